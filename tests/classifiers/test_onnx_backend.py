"""The ONNX Runtime back-end: same probabilities and features as torch, a cached export, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import field_crops

from wsi_screen.classifiers import onnx_backend
from wsi_screen.classifiers import resolve_model
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.types import Cell
from wsi_screen.types import PatchBatch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")


def test_default_model_on_onnx_matches_torch_within_1e3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSI_SCREEN_CACHE", str(tmp_path))
    bundle = resolve_model("default")
    torch32 = TimmClassifier(bundle, device="cpu", batch_size=8, reduced_precision=False)
    onnx = TimmClassifier(bundle, device="cpu", batch_size=8, backend="onnx")
    patches = field_crops(12, bundle.patch_size_px)
    p_torch, p_onnx = torch32.classify_arrays(patches), onnx.classify_arrays(patches)
    assert p_onnx.shape == p_torch.shape == (12, len(bundle.class_names))
    assert np.abs(p_onnx - p_torch).max() < 1e-3
    cells = [Cell(i, "f", float(i), 0.0, (0, 0, 1, 1), 1.0, "test") for i in range(len(patches))]
    a, b = (
        torch32.classify(PatchBatch(patches, tuple(cells))),
        onnx.classify(PatchBatch(patches, tuple(cells))),
    )
    assert np.abs(a.probs - b.probs).max() < 1e-3
    if a.domain_stats is not None:  # the out-of-domain gate sees the same feature distances
        assert b.domain_stats is not None
        np.testing.assert_allclose(a.domain_stats, b.domain_stats, rtol=1e-3, atol=1e-3)
    assert list((tmp_path / "onnx").glob("*.onnx"))  # exported into the cache


def test_the_export_is_cached_by_the_bundles_hash(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSI_SCREEN_CACHE", str(tmp_path))
    bundle = ModelBundle.load(tiny_bundle)
    first = TimmClassifier(bundle, device="cpu", backend="onnx")
    assert first._runtime is not None and first._runtime.path.parent == tmp_path / "onnx"

    def no_export(*a: object, **k: object) -> Path:
        msg = "exported twice"
        raise AssertionError(msg)

    monkeypatch.setattr(onnx_backend, "_export", no_export)
    again = TimmClassifier(bundle, device="cpu", backend="onnx")
    patches = field_crops(4, bundle.patch_size_px)
    np.testing.assert_allclose(first.classify_arrays(patches), again.classify_arrays(patches))
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.endswith(".tmp")]  # written atomically


def test_backend_settings_are_checked(tiny_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="classify.backend"):
        ScreenConfig.from_dict({"classify": {"backend": "tensorrt"}})
    with pytest.raises(ConfigError, match="runs on the CPU"):
        TimmClassifier(ModelBundle.load(tiny_bundle), device="cuda", backend="onnx")
