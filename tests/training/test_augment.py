from __future__ import annotations

import numpy as np
import pytest
import torch

from wsi_screen.classifiers.preprocess import shah_preprocess
from wsi_screen.errors import ConfigError
from wsi_screen.training.augment import AugmentConfig
from wsi_screen.training.augment import augment_batch
from wsi_screen.training.augment import hed_to_rgb
from wsi_screen.training.augment import rgb_to_hed


def test_hed_round_trip() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0.05, 1.0, size=(16, 16, 3))
    assert np.allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-6)
    # a violet (haematoxylin-like) pixel has a larger H than E density
    hed = rgb_to_hed(np.array([[[90, 60, 160]]], dtype=np.uint8))
    assert hed[0, 0, 0] > hed[0, 0, 1]


def test_augment_shapes_range_and_randomness() -> None:
    x = torch.rand(4, 3, 40, 40)
    g = torch.Generator().manual_seed(1)
    y = augment_batch(x, AugmentConfig(), generator=g)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0
    assert float(y.max()) <= 1.0
    assert not torch.allclose(y, x)
    g2 = torch.Generator().manual_seed(1)
    assert torch.allclose(augment_batch(x, AugmentConfig(), generator=g2), y)


def test_identity_augmentation_keeps_image() -> None:
    x = torch.rand(2, 3, 24, 24)
    cfg = AugmentConfig(
        rotation_deg=0, flip=False, shift=0, shear=0, zoom=0, brightness=0, contrast=0, stain_sigma=0
    )
    assert torch.allclose(augment_batch(x, cfg), x, atol=1e-5)


def test_stain_only_changes_colour_not_geometry() -> None:
    x = torch.zeros(1, 3, 16, 16) + 0.9
    x[:, :, 4:12, 4:12] = torch.tensor([0.35, 0.25, 0.6]).view(1, 3, 1, 1)
    cfg = AugmentConfig(
        rotation_deg=0, flip=False, shift=0, shear=0, zoom=0, brightness=0, contrast=0, stain_sigma=0.3
    )
    y = augment_batch(x, cfg, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(y, x, atol=1e-3)
    inside = y[0, :, 8, 8]
    assert torch.allclose(y[0, :, 5, 5], inside, atol=1e-5)  # uniform region stays uniform


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="augment.shift"):
        AugmentConfig(shift=1.5)


def test_shah_preprocess_keeps_shape() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (50, 50, 3), dtype=np.uint8)
    out = shah_preprocess(img)
    assert out.shape == img.shape
    assert out.dtype == np.uint8


def test_colour_and_blur_jitter_change_images_and_stay_in_range() -> None:
    import torch

    from wsi_screen.training.augment import AugmentConfig
    from wsi_screen.training.augment import augment_batch

    still = {"rotation_deg": 0.0, "flip": False, "shift": 0.0, "shear": 0.0, "zoom": 0.0}
    flat = {"brightness": 0.0, "contrast": 0.0, "stain_sigma": 0.0}
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    same = augment_batch(x.clone(), AugmentConfig(**still, **flat))
    assert float((same - x).abs().max()) < 1e-4
    for extra in ({"hue": 0.1}, {"saturation": 0.5}, {"gamma": 0.3}, {"white_balance": 0.2}, {"blur": 2.0}):
        y = augment_batch(
            x.clone(), AugmentConfig(**still, **flat, **extra), generator=torch.Generator().manual_seed(0)
        )
        assert y.shape == x.shape
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert float((y - x).abs().max()) > 0.01, extra
    # hue rotation keeps luminance (Y of YIQ) where nothing clips
    grey = torch.full((2, 3, 8, 8), 0.5)
    y = augment_batch(grey.clone(), AugmentConfig(**still, **flat, hue=0.4))
    assert float((y - grey).abs().max()) < 1e-4


def test_augment_ranges_are_checked() -> None:
    import pytest

    from wsi_screen.errors import ConfigError
    from wsi_screen.training.augment import AugmentConfig

    with pytest.raises(ConfigError, match="hue"):
        AugmentConfig(hue=1.5)
    with pytest.raises(ConfigError, match="blur"):
        AugmentConfig(blur=50.0)


def test_jpeg_and_erase_change_some_images_only() -> None:
    still = {"rotation_deg": 0.0, "flip": False, "shift": 0.0, "shear": 0.0, "zoom": 0.0}
    flat = {"brightness": 0.0, "contrast": 0.0, "stain_sigma": 0.0}
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for extra in ({"jpeg": 20}, {"erase": 0.5}):
        y = augment_batch(
            x.clone(), AugmentConfig(**still, **flat, **extra), generator=torch.Generator().manual_seed(0)
        )
        assert y.shape == x.shape
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        changed = (y - x).abs().flatten(1).amax(1) > 0.02
        assert 4 <= int(changed.sum()) <= 28, extra  # about half of the batch, not all or none
    # a low JPEG quality loses the fine noise: the re-encoded images are smoother
    y = augment_batch(
        x.clone(), AugmentConfig(**still, **flat, jpeg=10), generator=torch.Generator().manual_seed(0)
    )
    changed = (y - x).abs().flatten(1).amax(1) > 0.02
    assert float(y[changed].diff(dim=-1).abs().mean()) < float(x[changed].diff(dim=-1).abs().mean())
    # an erased rectangle is a block of pixels that differ from the input
    y = augment_batch(
        x.clone(), AugmentConfig(**still, **flat, erase=0.9), generator=torch.Generator().manual_seed(0)
    )
    frac = ((y - x).abs().amax(1) > 1e-6).flatten(1).float().mean(1)
    assert float(frac.max()) <= 0.2 and float(frac.max()) >= 0.015
    with pytest.raises(ConfigError, match="jpeg"):
        AugmentConfig(jpeg=5)
