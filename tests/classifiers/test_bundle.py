from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wsi_screen.classifiers import resolve_model
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.errors import ModelBundleError


def test_bundle_round_trip_and_hash(tiny_bundle: Path) -> None:
    b = ModelBundle.load(tiny_bundle)
    assert b.architecture == "test_resnet"
    assert b.class_names[1] == "BLA"
    assert len(b.sha256()) == 64
    assert resolve_model(tiny_bundle) == b
    assert b.patch_size_um == pytest.approx(250 * 0.0862)


def test_bundle_errors_name_the_problem(tmp_path: Path, tiny_bundle: Path) -> None:
    with pytest.raises(ModelBundleError, match="no model.json"):
        ModelBundle.load(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((tiny_bundle / "model.safetensors").read_bytes())
    meta = json.loads((tiny_bundle / "model.json").read_text())
    del meta["class_names"]
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelBundleError, match="missing key.*class_names"):
        ModelBundle.load(bad)
    meta = json.loads((tiny_bundle / "model.json").read_text())
    meta["class_names"] = ["A", "B"]  # weights have 8 outputs
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelBundleError, match="do not fit"):
        ModelBundle.load(bad).create_model()
    with pytest.raises(ModelBundleError, match="shipped"):
        resolve_model("no-such-model")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"mpp": None}, "invalid value"),
        ({"mpp": 0}, "mpp must be"),
        ({"mpp": float("nan")}, "mpp must be"),
        ({"std": [0.2, 0.0, 0.2]}, "std finite and > 0"),
        ({"mean": [0.5, float("inf"), 0.5]}, "mean must be finite"),
        ({"interpolation": "lanczos9"}, "interpolation must be one of"),
    ],
)
def test_bundle_scale_and_normalisation_are_checked(
    tmp_path: Path, tiny_bundle: Path, change: dict, match: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((tiny_bundle / "model.safetensors").read_bytes())
    meta = {**json.loads((tiny_bundle / "model.json").read_text()), **change}
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelBundleError, match=match) as info:
        ModelBundle.load(bad)
    assert str(bad / "model.json") in str(info.value)
    del meta["mpp"]  # the training scale is never guessed
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelBundleError, match="missing key.*mpp"):
        ModelBundle.load(bad)


def test_weights_are_safetensors_not_pickle(tiny_bundle: Path) -> None:
    head = (tiny_bundle / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"PK") and not head.startswith(b"\x80")  # neither zip nor pickle


def test_classifier_probabilities_and_precision_paths(tiny_bundle: Path) -> None:
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 255, (5, 250, 250, 3), dtype=np.uint8)
    bundle = ModelBundle.load(tiny_bundle)
    fp32 = TimmClassifier(bundle, device="cpu", reduced_precision=False, batch_size=2)
    p32 = fp32.classify_arrays(patches)
    assert p32.shape == (5, 8) and p32.dtype == np.float32
    np.testing.assert_allclose(p32.sum(axis=1), 1.0, atol=1e-5)
    # batch size does not change results
    np.testing.assert_allclose(
        TimmClassifier(bundle, device="cpu", reduced_precision=False, batch_size=5).classify_arrays(patches),
        p32,
        atol=1e-5,
    )
    auto = TimmClassifier(bundle, device="cpu", batch_size=4)  # bf16 where the CPU supports it
    np.testing.assert_allclose(auto.classify_arrays(patches), p32, atol=0.05)
    assert fp32.classify_arrays(patches[:0]).shape == (0, 8)


def test_preprocessing_recorded_in_the_bundle_is_applied_at_inference(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    from wsi_screen.classifiers.preprocess import shah_preprocess

    meta = json.loads((tiny_bundle / "model.json").read_text())
    shah = tmp_path / "shah"
    shah.mkdir()
    (shah / "model.safetensors").write_bytes((tiny_bundle / "model.safetensors").read_bytes())
    (shah / "model.json").write_text(json.dumps({**meta, "preprocess": "shah"}))
    b = ModelBundle.load(shah)
    assert b.preprocess == "shah"
    assert ModelBundle.load(tiny_bundle).preprocess is None
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 255, (2, 250, 250, 3), dtype=np.uint8)
    plain = TimmClassifier(ModelBundle.load(tiny_bundle), device="cpu", reduced_precision=False)
    with_shah = TimmClassifier(b, device="cpu", reduced_precision=False)
    done = np.stack([shah_preprocess(p) for p in patches])
    assert torch.equal(with_shah.to_tensor(patches), plain.to_tensor(done))
    assert not torch.equal(with_shah.to_tensor(patches), plain.to_tensor(patches))
    (shah / "model.json").write_text(json.dumps({**meta, "preprocess": "blur"}))
    with pytest.raises(ModelBundleError, match="preprocess must be null or one of shah"):
        ModelBundle.load(shah)


def test_calibration_temperature_is_read_from_model_json_and_applied(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    import shutil

    from wsi_screen.classifiers.calibration import softmax

    folder = tmp_path / "calibrated"
    shutil.copytree(tiny_bundle, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["calibration"] = {"method": "temperature", "temperature": 2.5, "fitted_on": "validation", "n": 10}
    (folder / "model.json").write_text(json.dumps(meta))
    plain, calibrated = ModelBundle.load(tiny_bundle), ModelBundle.load(folder)
    assert plain.calibration is None
    assert calibrated.calibration is not None and calibrated.calibration.temperature == 2.5
    assert calibrated.to_json()["calibration"]["temperature"] == 2.5  # written back as it was read
    assert "calibration" not in plain.to_json()

    rng = np.random.default_rng(1)
    patches = rng.integers(0, 255, (6, 250, 250, 3), dtype=np.uint8)
    p1 = TimmClassifier(plain, device="cpu", reduced_precision=False).classify_arrays(patches)
    p2 = TimmClassifier(calibrated, device="cpu", reduced_precision=False).classify_arrays(patches)
    logits = np.log(p1.astype(np.float64))  # softmax is shift-invariant: log p are logits up to a constant
    np.testing.assert_allclose(p2, softmax(logits, 2.5), atol=1e-5)
    assert (p2.argmax(1) == p1.argmax(1)).all()  # calls unchanged, only the confidence

    for bad, why in ((0, "> 0"), (-1.0, "> 0"), ("hot", "invalid value"), (None, "")):
        meta["calibration"] = (
            {"temperature": bad} if bad is not None else {"method": "platt", "temperature": 1}
        )
        (folder / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelBundleError, match="model.json") as e:
            ModelBundle.load(folder)
        assert why in str(e.value)
