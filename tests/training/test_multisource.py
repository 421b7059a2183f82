"""Training on several sources (labs): manifest, per-source resampling, split and balancing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.training.test_train import tiny_cfg
from wsi_screen.errors import ConfigError
from wsi_screen.training.augment import AugmentConfig
from wsi_screen.training.augment import augment_batch
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.manifest import load_manifest
from wsi_screen.training.manifest import scan_manifest
from wsi_screen.training.train import train_model
from wsi_screen.training.train_utils import sample_epoch

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


def _disc_image(path: Path, side: int, radius: int, colour: tuple[int, int, int]) -> None:
    img = np.full((side, side, 3), 230, np.uint8)
    cv2.circle(img, (side // 2, side // 2), radius, colour, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[:, :, ::-1])


def _two_labs(tmp: Path, n: int = 12) -> Path:
    """Lab A: class folders at 0.1 um/px (64 px); lab B: prefixed names at 0.2 um/px (32 px).

    A disc of 3.2 um radius is 32 px in lab A and 16 px in lab B: the same microns.
    """
    for code, colour in {"BLA": (120, 60, 170), "LYT": (60, 150, 90)}.items():
        for i in range(n):
            _disc_image(tmp / "a" / code / f"{code}_{i}.png", 64, 12, colour)
    for prefix, colour in {"LY": (60, 150, 90), "ERB": (200, 40, 40), "JUNK": (0, 0, 0)}.items():
        for i in range(n):
            _disc_image(tmp / "b" / "all" / f"{prefix}_{i}.png", 32, 6, colour)
    (tmp / "m.toml").write_text(
        """
name = "two"
classes = ["BLA", "EBO", "LYT"]
[[source]]
name = "a"
root = "a"
mpp = 0.1
[[source]]
name = "b"
root = "b"
mpp = 0.2
[source.scheme]
label_from = "prefix"
drop = ["JUNK"]
[source.scheme.classes]
LYT = ["LY"]
EBO = ["ERB"]
""",
        encoding="utf-8",
    )
    return tmp / "m.toml"


def test_manifest_maps_classes_and_tags_sources(tmp_path: Path) -> None:
    ps = scan_manifest(load_manifest(_two_labs(tmp_path)), model_mpp=0.1)
    assert ps.class_names == ("BLA", "EBO", "LYT")
    assert ps.counts() == {"BLA": 12, "EBO": 12, "LYT": 24}
    assert ps.dropped == {"b:JUNK": 12}
    assert {it.source: it.scale for it in ps.items} == {"a": 1.0, "b": pytest.approx(2.0)}
    per = ps.summary()["per_source"]
    assert per == {"a": {"BLA": 12, "LYT": 12}, "b": {"EBO": 12, "LYT": 12}}
    # 4 (source, class) strata
    assert sorted(np.bincount(ps.strata).tolist()) == [12, 12, 12, 12]


def test_each_source_is_resampled_to_the_model_scale(tmp_path: Path) -> None:
    ps = scan_manifest(load_manifest(_two_labs(tmp_path)), model_mpp=0.1)
    a = next(it for it in ps.items if it.source == "a" and it.target == "LYT")
    b = next(it for it in ps.items if it.source == "b" and it.target == "LYT")
    patches = load_patches([a.path, b.path], patch_size_px=64, scales=[a.scale, b.scale])
    # the disc covers the same area in both patches once lab B is brought to 0.1 um/px
    dark = (patches.mean(axis=3) < 180).sum(axis=(1, 2))
    assert dark[0] == pytest.approx(dark[1], rel=0.1)
    assert dark[0] > 400  # a disc of radius 12 px (452 px), not an empty patch
    naive = load_patches([b.path], patch_size_px=64, scale=1.0)  # not resampled: half the radius
    assert (naive[0, 16:48, 16:48].mean(axis=2) < 180).sum() < dark[1] / 3


def test_manifest_errors_are_one_line(tmp_path: Path) -> None:
    path = _two_labs(tmp_path)
    text = path.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('classes = ["BLA", "EBO", "LYT"]', 'classes = ["BLA", "LYT"]'), "utf-8")
    with pytest.raises(ConfigError, match="EBO, not in classes"):
        scan_manifest(load_manifest(bad), 0.1)
    bad.write_text(text.replace("mpp = 0.2", "mpp = 200"), "utf-8")
    with pytest.raises(ConfigError, match="mpp"):
        load_manifest(bad)
    bad.write_text(text.replace('name = "b"', 'name = "a"'), "utf-8")
    with pytest.raises(ConfigError, match="must differ"):
        load_manifest(bad)
    bad.write_text(text + "\n" + "x = " + "[" * 100 + "]" * 100 + "\n", "utf-8")
    with pytest.raises(ConfigError):
        load_manifest(bad)


def test_sampler_balances_classes_and_sources() -> None:
    # class 0: 900 images of source 0 and 100 of source 1; class 1: 50 of source 0
    labels = np.array([0] * 1000 + [1] * 50)
    sources = np.array([0] * 900 + [1] * 100 + [0] * 50)
    order = sample_epoch(labels, "sampler", np.random.default_rng(0), sources=sources, size=40_000)
    assert np.mean(labels[order] == 1) == pytest.approx(0.5, abs=0.02)
    c0 = order[labels[order] == 0]
    assert np.mean(sources[c0] == 1) == pytest.approx(0.5, abs=0.02)
    # without sources the big lab dominates its class
    plain = sample_epoch(labels, "sampler", np.random.default_rng(0), size=40_000)
    c0 = plain[labels[plain] == 0]
    assert np.mean(sources[c0] == 1) == pytest.approx(0.1, abs=0.02)


def test_sampler_epoch_size_and_permutation() -> None:
    labels = np.array([0, 1, 1, 0, 1])
    assert sorted(sample_epoch(labels, "none", np.random.default_rng(1))) == [0, 1, 2, 3, 4]
    long = sample_epoch(labels, "none", np.random.default_rng(1), size=12)
    assert len(long) == 12 and np.bincount(long).min() >= 2


def test_stain_mix_moves_stain_towards_the_partner() -> None:
    purple = torch.tensor([0.55, 0.35, 0.75]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    pink = torch.tensor([0.9, 0.55, 0.7]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    x = torch.cat([purple, pink]).clone() + torch.rand(2, 3, 16, 16) * 0.05
    cfg = AugmentConfig(
        rotation_deg=0,
        flip=False,
        shift=0,
        shear=0,
        zoom=0,
        brightness=0,
        contrast=0,
        stain_sigma=0,
        stain_mix=0.999,
    )
    moved = []
    for seed in range(20):
        y = augment_batch(x, cfg, generator=torch.Generator().manual_seed(seed))
        # distance from own colour, relative to the distance between the two images
        d_own = (y[0].mean((1, 2)) - x[0].mean((1, 2))).norm()
        d_between = (x[1].mean((1, 2)) - x[0].mean((1, 2))).norm()
        moved.append(float(d_own / d_between))
    assert max(moved) > 0.3 and min(moved) >= 0 and max(moved) <= 1.05
    off = augment_batch(
        x, AugmentConfig(**{**cfg.to_json(), "stain_mix": 0.0}), generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(off, x, atol=1e-5)


def test_two_lab_training_records_sources_and_splits_per_source(tmp_path: Path) -> None:
    manifest = _two_labs(tmp_path, n=20)
    out = tmp_path / "m"
    bundle = train_model(manifest, out, tiny_cfg(test_fraction=0.2, epochs=2, mpp=0.1, epoch_size=64))
    assert bundle.class_names == ("BLA", "EBO", "LYT")
    data = bundle.provenance["data"]
    assert data["train"]["per_source"]["b"]["EBO"] > 0
    assert [s["name"] for s in data["split"]["manifest"]["sources"]] == ["a", "b"]
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    # 20 % of each (source, class): 4 of each of the 4 strata
    assert {k: len(v) for k, v in split["test_by_source"].items()} == {"a": 8, "b": 8}
    assert len(split["test"]) == 16
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    assert len(history) == 2


@pytest.mark.skipif(not (SHARED / "pbc").is_dir(), reason="../shared/data/pbc absent (no real PBC images)")
def test_shipped_manifest_reads_both_labs() -> None:
    ps = scan_manifest(load_manifest(REPO / "examples" / "training" / "marrow13.toml"), 0.0862)
    per = ps.summary()["per_source"]
    assert set(per) == {"matek", "pbc"}
    assert len(ps.class_names) == 13
    assert all(n > 0 for n in ps.counts().values())
    assert all(abs(it.scale - 0.099 / 0.0862) < 1e-9 for it in ps.items if it.source == "pbc")


def test_evaluating_one_source_uses_its_test_share_and_knows_its_training_data(tmp_path: Path) -> None:
    from wsi_screen.classifiers.bundle import ModelBundle
    from wsi_screen.training.evaluate import evaluate_bundle
    from wsi_screen.training.overlap import is_training_data

    manifest = _two_labs(tmp_path, n=20)
    out = tmp_path / "m"
    train_model(manifest, out, tiny_cfg(test_fraction=0.2, epochs=1, mpp=0.1, epoch_size=32))
    bundle = ModelBundle.load(out)
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    m = evaluate_bundle(bundle, tmp_path / "a", tmp_path / "eval", only=out / "split.json")
    assert m["n_images"] == len(split["test_by_source"]["a"]) == 8
    assert is_training_data(bundle, tmp_path / "a", {"BLA": 20, "LYT": 20})
    assert not is_training_data(bundle, tmp_path / "elsewhere", {"BLA": 3})


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("hf-hub:evil/model", {}), ("resnet18", {"pretrained_cfg_overlay": {"file": "/x"}}), ("a/b", {})],
)
def test_train_refuses_what_a_bundle_may_not_name_before_reading_data(arch: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="--arch|--model-kwarg"):
        tiny_cfg(arch=arch, model_kwargs=kwargs)


def test_deep_scheme_file_is_a_one_line_error(tmp_path: Path) -> None:
    from wsi_screen.training.schemes import load_scheme

    bad = tmp_path / "s.toml"
    bad.write_text("x = " + "[" * 500 + "]" * 500 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.toml"):
        load_scheme(bad)


def test_cli_train_then_calibrate_a_small_two_lab_bundle(tmp_path: Path) -> None:
    """train names the next step; calibrate fits what a small validation split allows and says what not."""
    from click.testing import CliRunner

    from wsi_screen.classifiers.bundle import ModelBundle
    from wsi_screen.cli import main

    manifest = _two_labs(tmp_path, n=12)
    out = tmp_path / "m"
    args = ["train", str(manifest), "-o", str(out), "--arch", "test_resnet", "--image-size", "32",
            "--epochs", "1", "--batch-size", "16", "--epoch-size", "32", "--device", "cpu", "--threads", "1",
            "--test-fraction", "0.2", "--val-fraction", "0.3"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"next: wsi-screen calibrate {out} {manifest}" in res.output
    res = CliRunner().invoke(
        main, ["calibrate", str(out), str(manifest), "--fit", "calibration", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "domain reference skipped" in res.output and "fewer than a group of 30" in res.output
    bundle = ModelBundle.load(out)
    assert bundle.calibration is not None and bundle.domain is None
