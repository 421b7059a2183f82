"""Fixtures for batch tests: small synthetic fields, corrupt inputs, and a CLI runner helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from _batch_helpers import GOOD
from _batch_helpers import N_GOOD
from _synthetic import grid_centres
from _synthetic import synthetic_field
from click.testing import CliRunner
from click.testing import Result


def write_field(path: Path, seed: int, width: int = 600, height: int = 500) -> Path:
    """A small synthetic field (about 6 cells) as PNG, JPEG or TIFF."""
    img = synthetic_field(width, height, grid_centres(width, height, 200), seed=seed)
    if path.suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, img)
    else:
        cv2.imwrite(str(path), img[:, :, ::-1])
    return path


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good fields and five bad inputs (truncated PNG/JPEG, text as .tif, empty, .txt)."""
    folder = tmp_path_factory.mktemp("mixed")
    for i, name in enumerate(GOOD):
        write_field(folder / name, seed=i)
    png = (folder / GOOD[0]).read_bytes()
    (folder / "d_truncated.png").write_bytes(png[: len(png) // 3])
    jpg = (folder / GOOD[1]).read_bytes()
    (folder / "e_truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (folder / "f_text.tif").write_text("not an image\n")
    (folder / "g_empty.png").write_bytes(b"")
    (folder / "h_notes.txt").write_text("scanner notes\n")
    (folder / ".hidden.png").write_bytes(png)  # hidden files are never inputs
    return folder


@pytest.fixture(scope="session")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six good fields: enough for a batch to be killed between two inputs."""
    folder = tmp_path_factory.mktemp("good")
    for i in range(N_GOOD):
        write_field(folder / f"field_{i:02d}.png", seed=10 + i)
    return folder


@pytest.fixture
def run_batch_cli(tiny_bundle: Path) -> Callable[..., Result]:
    """Invoke ``wsi-screen batch`` in-process with the tiny bundle on CPU."""

    def run(*args: str) -> Result:
        from wsi_screen.cli import main

        argv = ["--log-level", "warning", "batch", *args, "--model", str(tiny_bundle), "--device", "cpu"]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return run
