"""CUDA path: run with `pytest -m gpu` on a machine with a GPU (deselected by default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_amp_matches_cpu_fp32(tiny_bundle: Path) -> None:
    from wsi_screen.classifiers.bundle import ModelBundle
    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    patches = np.random.default_rng(0).integers(0, 255, (40, 250, 250, 3), dtype=np.uint8)
    bundle = ModelBundle.load(tiny_bundle)
    cpu = TimmClassifier(bundle, device="cpu", reduced_precision=False).classify_arrays(patches)
    gpu = TimmClassifier(bundle, device="cuda", batch_size=16)
    assert gpu.dtype is not None  # AMP on CUDA
    np.testing.assert_allclose(gpu.classify_arrays(patches), cpu, atol=0.05)


def test_cuda_device_resolves() -> None:
    from wsi_screen.device import select_device

    assert select_device("cuda:0").type == "cuda"
