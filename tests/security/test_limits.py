"""Bounded work per input: size caps before decoding, and a per-input time limit."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.limits import check_slide_geometry
from wsi_screen.runner import build_screener
from wsi_screen.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
SLIDE = ROOT / "examples" / "data" / "synthetic_slide.tiff"
FIELD = ROOT / "examples" / "data" / "synthetic_field.jpg"


def _props(w: int, h: int, tile: int) -> dict[str, object]:
    return {
        "tiffslide.level[0].width": w,
        "tiffslide.level[0].height": h,
        "tiffslide.level[0].tile-width": tile,
        "tiffslide.level[0].tile-height": tile,
    }


def test_default_caps_admit_a_real_scan_and_refuse_bombs() -> None:
    limits = LimitsConfig()
    check_slide_geometry(Path("scan.svs"), _props(100_000, 100_000, 256), (100_000, 100_000), limits)
    with pytest.raises(InputError, match="max_slide_pixels"):
        check_slide_geometry(Path("bomb.tif"), _props(200_000, 200_000, 256), (200_000, 200_000), limits)
    with pytest.raises(InputError, match="min_tile_px"):
        check_slide_geometry(Path("t16.tif"), _props(20_000, 20_000, 16), (20_000, 20_000), limits)
    small = LimitsConfig(max_tiles=100)
    with pytest.raises(InputError, match="max_tiles"):
        check_slide_geometry(Path("many.tif"), _props(4096, 4096, 64), (4096, 4096), small)
    with pytest.raises(ConfigError, match="input_timeout_s"):
        LimitsConfig(input_timeout_s=-1)


def test_degenerate_tiling_is_refused_before_decoding(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "tiny_tiles.tiff"
    img = np.full((1024, 1024, 3), 200, np.uint8)
    tifffile.imwrite(path, img, tile=(16, 16), photometric="rgb")
    t = time.perf_counter()
    with pytest.raises(InputError, match="min_tile_px"):
        open_source(path)
    assert time.perf_counter() - t < 5
    assert open_source(path, limits=LimitsConfig(min_tile_px=16)).dimensions == (1024, 1024)


def test_configured_pixel_cap_fails_the_input_not_the_batch(tmp_path: Path, tiny_bundle: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nmax_slide_pixels = 1e6\n")
    args = ["run", str(SLIDE), str(FIELD), "-o", str(tmp_path / "o"), "--config", str(cfg)]
    res = CliRunner().invoke(main, [*args, "--model", str(tiny_bundle), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert "max_slide_pixels" in res.output and "[read]" in res.output
    assert (tmp_path / "o" / "synthetic_field" / "report.json").is_file()


class _Slow:
    """A detector that takes far longer than the time limit on its first input only."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0
        self.name = "slow"

    @property
    def target_mpp(self) -> float | None:
        return None

    def detect(self, tile: object) -> list[object]:
        self.calls += 1
        if self.calls == 1:
            end = time.monotonic() + 30
            while time.monotonic() < end:  # Python code: the alarm interrupts it
                time.sleep(0.01)
        return self.inner.detect(tile)  # type: ignore[attr-defined]

    def params(self) -> dict[str, object]:
        return {}


def test_input_timeout_fails_that_input_only(tiny_bundle: Path) -> None:
    screener, _ = build_screener(model=str(tiny_bundle), device="cpu", input_timeout=0.5)
    screener.detector = _Slow(screener.detector)
    t = time.perf_counter()
    items = list(screener.screen([FIELD, FIELD], stems=["a", "b"]))
    assert time.perf_counter() - t < 20
    assert items[0].failure is not None and items[0].failure.stage == "timeout"
    assert "per-input time limit (0.5 s)" in items[0].failure.message
    assert items[1].ok and items[1].cells


def test_cli_input_timeout(tmp_path: Path, tiny_bundle: Path) -> None:
    args = ["run", str(SLIDE), "-o", str(tmp_path / "o"), "--input-timeout", "0.001"]
    res = CliRunner().invoke(main, [*args, "--model", str(tiny_bundle), "--device", "cpu"])
    assert res.exit_code == 1, res.output
    assert "[timeout]" in res.output
