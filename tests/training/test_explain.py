from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.classifiers import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.errors import ConfigError
from wsi_screen.training.explain import embed_2d
from wsi_screen.training.explain import explain_patches
from wsi_screen.training.explain import penultimate_features


@pytest.fixture
def patches() -> np.ndarray:
    rng = np.random.default_rng(0)
    p = np.full((2, 250, 250, 3), 220, np.uint8)
    for i in range(2):
        cv2.circle(p[i], (125, 125), 40 + 10 * i, (120, 60, 170), -1)
    return np.clip(p + rng.normal(0, 8, p.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["gradcam", "smoothgrad"])
def test_maps_have_patch_shape(tiny_bundle: Path, patches: np.ndarray, method: str) -> None:
    clf = TimmClassifier(ModelBundle.load(tiny_bundle), device="cpu")
    exps = explain_patches(clf, patches, method=method, samples=4)
    assert len(exps) == 2
    for e in exps:
        assert e.map.shape == (250, 250)
        assert e.map.dtype == np.float32
        assert 0.0 <= float(e.map.min()) <= float(e.map.max()) <= 1.0
        assert e.predicted in clf.class_names
        assert e.probs.shape == (8,)
    exps = explain_patches(clf, patches[:1], method=method, target="BLA", samples=2)
    assert exps[0].target == "BLA"


def test_explain_errors(tiny_bundle: Path, patches: np.ndarray) -> None:
    clf = TimmClassifier(ModelBundle.load(tiny_bundle), device="cpu")
    with pytest.raises(ConfigError, match="method"):
        explain_patches(clf, patches, method="lime")
    with pytest.raises(ConfigError, match="not in the model"):
        explain_patches(clf, patches, target="HAC")


def test_embedding(tiny_bundle: Path, patches: np.ndarray) -> None:
    clf = TimmClassifier(ModelBundle.load(tiny_bundle), device="cpu")
    f = penultimate_features(clf, np.concatenate([patches] * 3))
    assert f.shape[0] == 6
    assert f.ndim == 2
    xy, used = embed_2d(f + np.random.default_rng(0).normal(0, 1, f.shape), method="pca")
    assert xy.shape == (6, 2)
    assert used == "pca"


def test_cli_explain_and_embedding(tiny_bundle: Path, patches: np.ndarray, tmp_path: Path) -> None:
    from wsi_screen.cli import main

    img = tmp_path / "BLA_1.png"
    cv2.imwrite(str(img), patches[0][:, :, ::-1])
    data = tmp_path / "data"
    for code, p in zip(("BLA", "LYT"), patches, strict=True):
        (data / code).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(data / code / f"{code}_{k}.png"), np.roll(p, 5 * k, 0)[:, :, ::-1])
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        [
            "explain",
            str(tiny_bundle),
            str(img),
            "-o",
            str(out),
            "--method",
            "gradcam",
            "--embedding",
            str(data),
            "--embed",
            "pca",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert np.load(out / "BLA_1_gradcam.npy").shape == (250, 250)
    assert (out / "BLA_1_gradcam.png").is_file()
    assert json.loads((out / "explanations.json").read_text())[0]["method"] == "gradcam"
    assert len((out / "embedding.csv").read_text().splitlines()) == 7
    assert (out / "embedding.png").is_file()


def test_cli_explain_goes_on_past_an_unreadable_image(
    tiny_bundle: Path, patches: np.ndarray, tmp_path: Path
) -> None:
    from wsi_screen.cli import main

    img = tmp_path / "BLA_1.png"
    cv2.imwrite(str(img), patches[0][:, :, ::-1])
    bad = tmp_path / "text.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["explain", str(tiny_bundle), str(bad), str(img), "-o", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 1
    assert "text.png" in res.output and "1 of 2 image(s) could not be read" in res.output
    assert (out / "BLA_1_gradcam.png").is_file()
    assert [r["image"] for r in json.loads((out / "explanations.json").read_text())] == [str(img)]
