"""calibrate_bundle on a tiny trained bundle: temperature and domain reference written into it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_train import make_class_folders
from test_train import tiny_cfg

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.training.calibrate import calibrate_bundle
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.domain_checks import gate_checks
from wsi_screen.training.domain_fit import GateFitConfig
from wsi_screen.training.domain_fit import swap_red_blue
from wsi_screen.training.train import train_model


def test_calibrate_bundle_writes_temperature_and_reference(tmp_path: Path) -> None:
    data = make_class_folders(tmp_path / "data", n=40)
    out = tmp_path / "m"
    train_model(data, out, tiny_cfg(epochs=2, test_fraction=0.2))
    weights_before = (out / "model.safetensors").read_bytes()

    gate = GateFitConfig(components=8, group_size=(10, 15), n_groups=200)
    result = calibrate_bundle(out, data, gate=gate, device="cpu", threads=1)

    meta = json.loads((out / "model.json").read_text())
    cal = meta["calibration"]
    assert cal["fitted_on"] == "validation"
    assert cal["temperature"] > 0
    assert cal["nll_after"] <= cal["nll_before"] + 1e-6  # the fit minimises validation NLL
    assert result["calibration"]["temperature"] == cal["temperature"]
    dom = meta["domain"]
    assert (out / dom["file"]).is_file()
    assert (out / "model.safetensors").read_bytes() == weights_before  # weights untouched
    # the bundle still loads, and the reference judges shifted groups of its own patches
    bundle = ModelBundle.load(out)
    ref = DomainReference.load(out, dom)
    clf = TimmClassifier(bundle, device="cpu", threads=1)
    paths = sorted(data.rglob("*.png"))[:40]
    patches = load_patches(paths, patch_size_px=bundle.patch_size_px)
    res = gate_checks(
        clf,
        ref,
        patches,
        shifts={"none": lambda p: p, "swap": swap_red_blue},
        n_groups=10,
        group_size=(20, 30),
    )
    # (whether a swap fires on these cartoon classes is not the point: tests/classifiers/test_domain.py
    # checks the gate's decisions; here the fitted reference must rank the swapped groups further out)
    assert res["none"]["out_of_domain"] == 0.0, res
    assert np.isfinite(res["none"]["score"]["median"])
    assert res["swap"]["score"]["median"] > res["none"]["score"]["median"], res

    # screening carries the domain evidence with the calls, from the same forward pass
    from wsi_screen.types import PatchBatch

    cells = tuple(range(len(patches)))
    calls = clf.classify(PatchBatch(patches, cells))  # type: ignore[arg-type]
    assert calls.domain_stats is not None and calls.domain_stats.shape == (len(patches), 7)
    np.testing.assert_allclose(calls.probs, clf.classify_arrays(patches), atol=1e-5)
    judged = calls.judge_domain()
    assert judged is not None and judged["status"] == "in_domain"
    assert calls.rows(0, 5).domain_stats.shape == (5, 7)

    # calibrating again replaces the reference file instead of piling them up
    calibrate_bundle(out, data, gate=gate, device="cpu", threads=1)
    assert len(list(out.glob("domain-*.safetensors"))) == 1


def test_cli_calibrate_writes_into_the_bundle(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    data = make_class_folders(tmp_path / "data", n=80)
    out = tmp_path / "m"
    train_model(data, out, tiny_cfg(epochs=1, test_fraction=0.2))
    res = CliRunner().invoke(main, ["calibrate", str(out), str(data), "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "model.json").read_text())
    assert f"temperature {meta['calibration']['temperature']:.3f}" in res.output
    assert (out / meta["domain"]["file"]).is_file()
    bad = CliRunner().invoke(main, ["calibrate", str(data / "BLA"), str(data), "--device", "cpu"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
