"""The fuzz harness over the sources, shared by tests/sources/test_fuzz_sources.py and benchmarks/.

:func:`seeds` writes small valid inputs of every kind wsi-screen reads; :func:`mutate` applies a
list of byte edits; :func:`exercise` opens the result and uses it the way a screening run does
(dimensions, pixel size, the first tiles, a thumbnail). Anything but a ``WsiScreenError`` escaping
from :func:`exercise` is a bug: a bad file must fail with a one-line error naming it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
from _synthetic import grid_centres
from _synthetic import synthetic_field
from _synthetic import write_pyramidal_tiff

from wsi_screen.config import TilingConfig
from wsi_screen.errors import WsiScreenError
from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp
from wsi_screen.tiling import iter_tiles

Edit = tuple[str, int, bytes]
"""(kind, position as a fraction of 2**16 of the file length, bytes).

Kinds: ``truncate``, ``flip``, ``insert``, ``overwrite`` (bytes at a position) and ``size`` (the
declared width and height of a PNG or of a TIFF's first image, from the payload's bytes, with the
PNG header's CRC fixed so the decoder believes it).
"""


def seeds(folder: Path) -> dict[str, bytes]:
    """Small valid inputs: PNG, JPEG, BMP, 16-bit PNG, plain TIFF and a tiled pyramidal TIFF."""
    folder.mkdir(parents=True, exist_ok=True)
    img = synthetic_field(160, 120, grid_centres(160, 120, 60), seed=1)
    out: dict[str, bytes] = {}
    for suffix in (".png", ".jpg", ".bmp"):
        ok, buf = cv2.imencode(suffix, img[:, :, ::-1])
        assert ok
        out[suffix] = buf.tobytes()
    ok, buf = cv2.imencode(".png", (img.astype(np.uint16) * 257)[:, :, ::-1])
    out["16bit.png"] = buf.tobytes()
    import tifffile

    tifffile.imwrite(folder / "plain.tif", img)
    out["plain.tif"] = (folder / "plain.tif").read_bytes()
    big = synthetic_field(600, 520, grid_centres(600, 520, 150), seed=2)
    path = write_pyramidal_tiff(folder / "pyramid.tiff", big, mpp=0.25, levels=3, tile=128)
    out["pyramid.tiff"] = path.read_bytes()
    return out


def _declared_size(buf: bytearray, payload: bytes) -> None:
    """Rewrite the image size a PNG or little-endian TIFF declares (payload: 8 bytes of sizes)."""
    raw = (payload * 8)[:8]
    w, h = (max(1, int.from_bytes(raw[i : i + 4], "big") >> (raw[i] % 24)) for i in (0, 4))
    if buf[:8] == b"\x89PNG\r\n\x1a\n" and len(buf) >= 33:
        buf[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
        buf[29:33] = zlib.crc32(bytes(buf[12:29])).to_bytes(4, "big")
    elif buf[:4] == b"II*\x00" and len(buf) >= 8:
        ifd = int.from_bytes(buf[4:8], "little")
        if ifd + 2 > len(buf):
            return
        n = int.from_bytes(buf[ifd : ifd + 2], "little")
        for k in range(min(n, 64)):
            e = ifd + 2 + 12 * k
            if e + 12 > len(buf):
                return
            tag, typ = int.from_bytes(buf[e : e + 2], "little"), int.from_bytes(buf[e + 2 : e + 4], "little")
            if tag in (256, 257):
                value = (w if tag == 256 else h) & (0xFFFF if typ == 3 else 0xFFFFFFFF)
                buf[e + 8 : e + 12] = value.to_bytes(4, "little")


def mutate(data: bytes, edits: list[Edit]) -> bytes:
    """Apply ``edits`` in order (positions scale with the current length)."""
    buf = bytearray(data)
    for kind, pos, payload in edits:
        at = (pos * len(buf)) >> 16
        if kind == "truncate":
            del buf[at:]
        elif kind == "flip" and buf:
            at = min(at, len(buf) - 1)
            buf[at] ^= payload[0] if payload and payload[0] else 0xFF
        elif kind == "insert":
            buf[at:at] = payload
        elif kind == "overwrite":
            buf[at : at + len(payload)] = payload
        elif kind == "size":
            _declared_size(buf, payload)
    return bytes(buf)


def exercise(path: Path, *, max_tiles: int = 4) -> str:
    """Open ``path`` and use it as a run would; return ``ok`` or the error's stage.

    Raises:
        Exception: anything that is not a :class:`WsiScreenError` (a bug).
    """
    try:
        with open_source(path) as src:
            w, h = src.dimensions
            assert w > 0 and h > 0
            mpp = resolve_mpp(src, user_mpp=None, model_mpp=0.25).mpp
            cfg = TilingConfig(tile_size_px=128, overlap_um=4.0)
            for i, tile in enumerate(iter_tiles(src, cfg, mpp=mpp)):
                assert tile.pixels.dtype == np.uint8 and tile.pixels.ndim == 3
                if i + 1 >= max_tiles:
                    break
            thumb = src.thumbnail(64)
            assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) <= 64
    except WsiScreenError as e:
        message, stage = str(e), e.stage
    else:
        return "ok"
    if not message or "\n" in message.strip():
        msg = f"{path}: not a one-line error: {message!r}"
        raise AssertionError(msg)
    return stage
