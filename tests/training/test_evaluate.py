from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.classifiers import ModelBundle
from wsi_screen.errors import InputError
from wsi_screen.training.datasets import fit_patch
from wsi_screen.training.evaluate import evaluate_bundle
from wsi_screen.training.schemes import load_scheme
from wsi_screen.training.schemes import load_tolerance


def _write(root: Path, code: str, n: int, size: int = 80, prefix: str | None = None) -> None:
    rng = np.random.default_rng(len(code) + n)
    (root / code).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / code / f"{prefix or code}_{i:03d}.jpg"), img)


def test_evaluate_writes_metrics_and_reports_unknown(tiny_bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for code in ("BLA", "LYT", "HAC"):  # HAC is not a class of the tiny bundle
        _write(data, code, 4)
    (data / "BLA" / ".DS_0001.jpg").write_bytes(b"not an image")  # hidden debris is ignored
    bundle = ModelBundle.load(tiny_bundle)
    out = tmp_path / "out"
    m = evaluate_bundle(bundle, data, out, tolerance=load_tolerance(), device="cpu")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_images"] == 12
    assert saved["n_evaluated"] == 8
    assert saved["unknown_classes"]["HAC"]["n"] == 4
    assert set(saved["per_class"]) == set(bundle.class_names)
    for key in ("precision", "recall", "f1", "support"):
        assert key in saved["per_class"]["BLA"]
    assert set(saved["macro"]) >= {"precision", "recall", "f1"}
    assert saved["per_class"]["BLA"]["support"] == 4
    assert saved["scale_handling"]["mode"] == "resized_whole_image_to_patch"
    assert m["model"]["sha256"] == bundle.sha256()
    lines = (out / "predictions.csv").read_text().splitlines()
    assert len(lines) == 13
    assert lines[0].startswith("path,true,predicted,confidence,prob_ART")
    for png in ("confusion_matrix.png", "pr_curves.png", "blast_roc.png"):
        assert (out / png).stat().st_size > 1000


def test_prefix_scheme_and_only_list(tiny_bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "pbc"
    _write(data, "ig", 3, prefix="PMY")
    _write(data, "platelet", 2, prefix="PLATELET")
    _write(data, "basophil", 2, prefix="BA")
    bundle = ModelBundle.load(tiny_bundle)
    m = evaluate_bundle(bundle, data, tmp_path / "o", scheme=load_scheme("pbc_matek"), mpp=0.2, device="cpu")
    assert m["data"]["dropped_by_scheme"] == {"PLATELET": 2}
    assert m["n_evaluated"] == 3  # PMO is a model class
    assert m["unknown_classes"]["BAS"]["n"] == 2
    assert m["scale_handling"]["factor"] == pytest.approx(0.2 / bundle.mpp)
    only = tmp_path / "only.txt"
    only.write_text("ig/PMY_000.jpg\n")
    m2 = evaluate_bundle(
        bundle, data, tmp_path / "o2", scheme=load_scheme("pbc_matek"), only=only, device="cpu"
    )
    assert m2["n_images"] == 1
    only.write_text("ig/nope.jpg\n")
    with pytest.raises(InputError, match="not found"):
        evaluate_bundle(bundle, data, tmp_path / "o3", only=only, device="cpu")


def test_fit_patch_scales_and_crops() -> None:
    img = np.zeros((100, 120, 3), np.uint8)
    img[45:55, 55:65] = 255  # a 10 px square in the centre
    out = fit_patch(img, 50, scale=2.0)
    assert out.shape == (50, 50, 3)
    assert 15 <= (out[:, :, 0] > 128).sum() ** 0.5 <= 25  # the square is ~20 px now
    assert fit_patch(img, 50, scale=None).shape == (50, 50, 3)
    assert fit_patch(img, 150).shape == (150, 150, 3)  # reflect-padded


def test_cli_evaluate(tiny_bundle: Path, tmp_path: Path) -> None:
    from wsi_screen.cli import main

    data = tmp_path / "data"
    _write(data, "EOS", 3)
    res = CliRunner().invoke(
        main, ["evaluate", str(tiny_bundle), str(data), "-o", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "macro recall" in res.output
    wrote = [line.removeprefix("wrote ") for line in res.output.splitlines() if line.startswith("wrote ")]
    names = ["metrics.json", "predictions.csv", "confusion_matrix.png", "pr_curves.png"]
    assert wrote == [str(tmp_path / "out" / n) for n in names]  # no blasts here: no blast_roc.png
    res = CliRunner().invoke(main, ["evaluate", "no_such_model", str(data), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2  # a model that does not load is a usage error, as documented
    assert "no_such_model" in res.output


def test_unreadable_images_are_skipped_and_listed_not_scored(tiny_bundle: Path, tmp_path: Path) -> None:
    from wsi_screen.cli import main

    data = tmp_path / "data"
    _write(data, "BLA", 3)
    _write(data, "LYT", 3)
    good = (data / "BLA" / "BLA_000.jpg").read_bytes()
    (data / "BLA" / "BLA_trunc.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (data / "LYT" / "LYT_text.png").write_text("not an image")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["evaluate", str(tiny_bundle), str(data), "-o", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 1, res.output
    assert "BLA_trunc.jpg" in res.output and "LYT_text.png" in res.output and "Traceback" not in res.output
    saved = json.loads((out / "metrics.json").read_text())
    assert sorted(Path(u["path"]).name for u in saved["unreadable"]) == ["BLA_trunc.jpg", "LYT_text.png"]
    assert saved["n_evaluated"] == 6
    assert len((out / "predictions.csv").read_text().splitlines()) == 7


def test_ece_is_reported_with_and_without_the_bundles_temperature(tiny_bundle: Path, tmp_path: Path) -> None:
    """metrics.json carries the ECE of the calibrated and of the raw softmax; the raw one equals
    the ECE the same weights give without a temperature."""
    data = tmp_path / "data"
    for code in ("BLA", "LYT"):
        _write(data, code, 6)
    plain = evaluate_bundle(ModelBundle.load(tiny_bundle), data, tmp_path / "a", device="cpu")
    assert plain["calibration"]["temperature"] == 1.0
    assert plain["calibration"]["ece_before"] == plain["calibration"]["ece_after"]
    assert plain["calibration"]["ece_after"] == pytest.approx(plain["ece"], abs=1e-6)

    meta = json.loads((tiny_bundle / "model.json").read_text())
    meta["calibration"] = {"method": "temperature", "temperature": 3.0, "fitted_on": "validation"}
    (tiny_bundle / "model.json").write_text(json.dumps(meta))
    hot = evaluate_bundle(ModelBundle.load(tiny_bundle), data, tmp_path / "b", device="cpu")
    cal = hot["calibration"]
    assert cal["temperature"] == 3.0 and cal["n"] == 12
    assert cal["ece_after"] == pytest.approx(hot["ece"])
    assert cal["ece_before"] == pytest.approx(plain["ece"], abs=1e-5)
    assert cal["ece_after"] != pytest.approx(cal["ece_before"], abs=1e-4)  # T = 3 flattens the softmax
