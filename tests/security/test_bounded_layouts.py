"""Bounded work for every layout: strips, forged field headers, and a time limit that ends cleanly.

The files are made here in a few milliseconds: their pixels are one constant value, deflated once
per megabyte and repeated (a full flush makes every block's output the same bytes), with the
Adler-32 checksum worked out in closed form.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wsi_screen.cli import main
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "examples" / "data" / "synthetic_field.jpg"


def deflate_constant(n: int, value: int, block: int = 1 << 20) -> bytes:
    """A zlib stream of ``n`` bytes all equal to ``value``, made without compressing them all."""
    c = zlib.compressobj(9)
    blk = bytes([value]) * block
    head = c.compress(blk) + c.flush(zlib.Z_FULL_FLUSH)
    rep = c.compress(blk) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every later block
    full, rest = divmod(n, block)
    tail = c.compress(bytes([value]) * rest) + c.flush(zlib.Z_FULL_FLUSH)
    a = (1 + n * value) % 65521
    b = (n + value * n * (n + 1) // 2) % 65521
    return head + rep * (full - 1) + tail + b"\x03\x00" + struct.pack(">I", (b << 16) | a)


def strip_tiff(path: Path, w: int, h: int, value: int = 200) -> Path:
    """An RGB TIFF whose pixels are one deflated strip of ``h`` rows (valid, decodable)."""
    data = deflate_constant(w * h * 3, value)
    tags = [(256, 4, w), (257, 4, h), (258, 3, -1), (259, 3, 8), (262, 3, 2), (273, 4, -2),
            (277, 3, 3), (278, 4, h), (279, 4, len(data)), (284, 3, 1)]  # fmt: skip
    bps_at = 8 + 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(tags)))
    for tag, typ, val in tags:
        count = 3 if tag == 258 else 1
        val = {-1: bps_at, -2: bps_at + 6}.get(val, val)
        out += struct.pack("<HHI", tag, typ, count)
        out += struct.pack("<HH", val, 0) if typ == 3 and count == 1 else struct.pack("<I", val)
    out += struct.pack("<I", 0) + struct.pack("<3H", 8, 8, 8) + data
    path.write_bytes(bytes(out))
    return path


def forged_jpeg(path: Path, w: int, h: int) -> Path:
    """A 64 px JPEG whose frame header (SOF0) claims ``w`` x ``h`` px."""
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 180, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))
    return path


def black_png(path: Path, w: int, h: int) -> Path:
    """A valid ``w`` x ``h`` black RGB PNG, a few hundred kB whatever its size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = deflate_constant(h * (1 + 3 * w), 0)  # filter byte 0 and black pixels: all zeros
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_single_strip_slide_is_refused_before_decoding(tmp_path: Path) -> None:
    path = strip_tiff(tmp_path / "strip.tif", 20_000, 20_000)  # 1.2e9 samples in one strip
    t = time.perf_counter()
    with pytest.raises(InputError, match=r"max_decode_samples.*refused before decoding"):
        open_source(path)
    assert time.perf_counter() - t < 5
    narrow = strip_tiff(tmp_path / "rows.tif", 9_000, 8_000)  # one strip of 2.2e8 samples
    with pytest.raises(InputError, match="max_decode_samples"):
        open_source(narrow)
    with open_source(narrow, limits=LimitsConfig(max_decode_samples=2**28)) as src:  # a lab may allow it
        assert src.read_region(0, 0, 64, 64).mean() == 200


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: forged_jpeg(p / "claims.jpg", 12_000, 12_000), "image too large"),  # Pillow's bomb warning
        (lambda p: forged_jpeg(p / "claims.jpg", 9_000, 9_000), "max_field_pixels"),  # under Pillow's limit
        (lambda p: black_png(p / "big.png", 13_000, 13_000), "image too large"),  # valid, just under 2x
    ],
)
def test_declared_field_size_is_capped_before_decoding(tmp_path: Path, make: object, match: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    assert path.stat().st_size < 2_000_000
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning printed instead would fail here too
        with pytest.raises(InputError, match=match) as err:
            open_source(path)
    assert time.perf_counter() - t < 3
    assert "refused before decoding" in str(err.value) and "\n" not in str(err.value)


def test_a_field_under_the_cap_still_reads(tmp_path: Path) -> None:
    path = black_png(tmp_path / "ok.png", 3000, 2000)
    with open_source(path) as src:
        assert src.dimensions == (3000, 2000)
    with pytest.raises(InputError, match="max_field_pixels"):
        open_source(path, limits=LimitsConfig(max_field_pixels=1e6))


def test_run_fails_each_bomb_in_one_line_and_screens_the_rest(tmp_path: Path, tiny_bundle: Path) -> None:
    bombs = [
        strip_tiff(tmp_path / "strip.tif", 20_000, 20_000),
        forged_jpeg(tmp_path / "claims.jpg", 12_000, 12_000),
        black_png(tmp_path / "big.png", 13_000, 13_000),
    ]
    t = time.perf_counter()
    args = ["run", *map(str, bombs), str(FIELD), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle)]
    res = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert time.perf_counter() - t < 60
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "DecompressionBomb" not in res.output
    failed = [line for line in res.output.splitlines() if "refused before decoding" in line]
    assert len(failed) == 3, res.output
    assert (tmp_path / "o" / "synthetic_field" / "report.json").is_file()


def test_default_time_limit_is_finite_and_echoed() -> None:
    assert 0 < LimitsConfig().input_timeout_s < float("inf")
    assert ScreenConfig().to_dict()["limits"]["input_timeout_s"] == LimitsConfig().input_timeout_s
    bad: dict[str, Any] = {"input_timeout_s": 1e308, "max_slide_pixels": 1e300, "max_decode_samples": 10**12}
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=f"limits.{key}"):
            LimitsConfig(**{key: value})


def test_time_limit_ends_a_slow_slide_without_a_traceback(tmp_path: Path, tiny_bundle: Path) -> None:
    """A strip decoded whole for every tile, allowed by the config, runs into the time limit.

    Before, the limit (SIGALRM) struck while zarr decoded on its own thread: the read went on
    after the input had failed and zarr's exit handler printed "Cannot close a running event loop".
    """
    slow = strip_tiff(tmp_path / "slow.tif", 20_000, 20_000)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nmax_decode_samples = 2147483648\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from wsi_screen.cli import main; main()", "run", str(slow), "-o", str(out)]
    cmd += ["--config", str(cfg), "--input-timeout", "1", "--model", str(tiny_bundle), "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "[timeout]" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "event loop" not in proc.stderr, proc.stderr[-3000:]
