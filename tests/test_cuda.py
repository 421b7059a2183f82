"""CUDA path: run with `pytest -m gpu` on a machine with a GPU (deselected by default)."""

from __future__ import annotations

import json
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


def test_augment_on_cuda_matches_cpu() -> None:
    """One seed gives the same augmentation on CPU and GPU (the draws come from a CPU generator)."""
    from wsi_screen.training.augment import AugmentConfig
    from wsi_screen.training.augment import augment_batch

    cfg = AugmentConfig(hue=0.05, saturation=0.3, gamma=0.3, white_balance=0.15, blur=1.5, erase=0.5)
    x = torch.rand(8, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    cpu = augment_batch(x.clone(), cfg, generator=torch.Generator().manual_seed(3))
    gpu = augment_batch(x.clone().cuda(), cfg, generator=torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=2e-3)
    jpeg = augment_batch(x.clone().cuda(), AugmentConfig(jpeg=40), generator=torch.Generator().manual_seed(3))
    assert jpeg.device.type == "cuda" and jpeg.shape == x.shape


def test_train_on_cuda(tmp_path: Path) -> None:
    """Training runs end to end on the GPU (patches and augmentation on the device) and saves a bundle."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "training"))
    from test_train import make_class_folders

    from wsi_screen.classifiers.bundle import ModelBundle
    from wsi_screen.training.augment import AugmentConfig
    from wsi_screen.training.train import TrainConfig
    from wsi_screen.training.train import train_model

    data = make_class_folders(tmp_path / "data", n=12, size=48)
    cfg = TrainConfig(
        arch="resnet10t",
        image_size=48,
        epochs=2,
        batch_size=8,
        device="cuda",
        augment=AugmentConfig(hue=0.05, saturation=0.3, gamma=0.3, blur=1.0, jpeg=40, erase=0.25),
    )
    bundle = train_model(data, tmp_path / "out", cfg)
    assert ModelBundle.load(tmp_path / "out").class_names == bundle.class_names
    assert len(json.loads((tmp_path / "out" / "history.json").read_text())) == 2
