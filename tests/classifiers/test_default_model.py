from __future__ import annotations

from pathlib import Path

import pytest

from wsi_screen.classifiers import resolve_model
from wsi_screen.classifiers import shipped_models

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CARD = Path(__file__).resolve().parents[2] / "wsi_screen" / "models" / "default" / "MODEL_CARD.md"


def test_default_bundle_is_shipped_and_small() -> None:
    assert "default" in shipped_models()
    b = resolve_model("default")
    assert b.class_names == ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")
    assert b.patch_size_px == 250
    assert b.mpp == pytest.approx(0.0862)
    size = sum(p.stat().st_size for p in b.path.iterdir() if p.is_file())  # type: ignore[union-attr]
    assert size < 25e6
    text = CARD.read_text()
    for needle in ("CC BY 4.0", "10.7937/TCIA.AXH3-T579", "HAC", "not assessable", "held-out"):
        assert needle in text


def test_default_model_classifies_real_patches() -> None:
    data = SHARED / "matek_bm"
    if not data.is_dir():
        pytest.skip("../shared/data not found: real-data test skipped")
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.training.datasets import load_patches

    b = resolve_model("default")
    listed = (b.path / "heldout_test.txt").read_text().splitlines()  # type: ignore[operator]
    heldout = [ln for ln in listed if ln and not ln.startswith("#")]
    # the first 3 held-out images of each class: never seen in training
    picks = [next(p for p in heldout if p.startswith(c + "/")) for c in b.class_names]
    picks += [[p for p in heldout if p.startswith(c + "/")][1] for c in b.class_names]
    picks += [[p for p in heldout if p.startswith(c + "/")][2] for c in b.class_names]
    probs = TimmClassifier(b, device="cpu", batch_size=24).classify_arrays(
        load_patches([data / p for p in picks], patch_size_px=250)
    )
    assert probs.shape == (24, 8)
    pred = [b.class_names[i] for i in probs.argmax(1)]
    truth = [p.split("/")[0] for p in picks]
    correct = sum(a == t for a, t in zip(pred, truth, strict=True))
    assert correct >= 15, list(zip(truth, pred, strict=True))  # chance would be 3 of 24
    # an eosinophil is the textbook easy case
    eos = [i for i, t in enumerate(truth) if t == "EOS"]
    assert sum(pred[i] == "EOS" for i in eos) >= 2


def test_cli_models_lists_default() -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    assert "default: tf_efficientnet_lite0, input 176 px" in res.output
    assert "ART BLA EOS LYT MON NGS NIF PMO" in res.output
    assert "yolo-wbc (detector, --detector yolo): yolo11n" in res.output
    res = CliRunner().invoke(main, ["models", "--card", "yolo-wbc"])
    assert res.exit_code == 0
    assert res.output.startswith("# yolo-wbc")
    res = CliRunner().invoke(main, ["models", "--card", "default"])
    assert res.exit_code == 0
    assert "CC BY 4.0" in res.output
    res = CliRunner().invoke(main, ["models", "--card", "nope"])
    assert res.exit_code == 2 and "yolo-wbc" in res.output  # a usage error that lists what there is
