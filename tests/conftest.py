"""Shared fixtures: synthetic fields and slides, a tiny timm bundle, isolated caches."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import grid_centres  # noqa: E402
from _synthetic import synthetic_field  # noqa: E402
from _synthetic import write_pyramidal_tiff  # noqa: E402

MATEK8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


def pytest_configure(config: pytest.Config) -> None:
    """Point library caches at a temporary folder for the whole test session."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="wsi-screen-tests-"))
    for var in ("MPLCONFIGDIR", "YOLO_CONFIG_DIR", "TORCHINDUCTOR_CACHE_DIR", "WSI_SCREEN_CACHE"):
        os.environ.setdefault(var, str(base / var.lower()))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained timm bundle with the 8 Matek classes present in shared/data."""
    import timm
    import torch

    from wsi_screen.classifiers.bundle import ModelBundle

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bundle")
    model = timm.create_model("test_resnet", pretrained=False, num_classes=len(MATEK8))
    bundle = ModelBundle(
        architecture="test_resnet",
        class_names=MATEK8,
        input_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        name="tiny-test",
    )
    bundle.save(folder, model)
    return folder


@pytest.fixture(scope="session")
def field_2452(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """A 2452 x 2056 PNG field at 0.0862 um/px with cells on a grid, some on tile seams."""
    centres = grid_centres(2452, 2056, 290)
    img = synthetic_field(2452, 2056, centres, lobed=[i % 4 == 0 for i in range(len(centres))])
    path = tmp_path_factory.mktemp("fields") / "field_a.png"
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path, centres


@pytest.fixture(scope="session")
def pyramid_tiff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]], float]:
    """A small tiled pyramidal TIFF (3 levels) with mpp 0.12 in its resolution tags."""
    mpp = 0.12
    centres = grid_centres(3000, 2600, 230)
    img = synthetic_field(3000, 2600, centres, mpp=mpp, seed=3)
    path = write_pyramidal_tiff(tmp_path_factory.mktemp("slides") / "slide_a.tiff", img, mpp=mpp)
    return path, centres, mpp
