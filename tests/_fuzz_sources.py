"""The fuzz harness over the sources, shared by tests/sources/test_fuzz_sources.py and benchmarks/.

:func:`seeds` writes small valid inputs of every kind wsi-screen reads; :func:`mutate` applies a
list of byte edits; :func:`exercise` opens the result and uses it the way a screening run does
(dimensions, pixel size, the first tiles, a thumbnail). Anything but a ``WsiScreenError`` escaping
from :func:`exercise` is a bug: a bad file must fail with a one-line error naming it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
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


# --- a batch folder of mutated inputs and sidecars (tests/security/test_fuzz_batch.py) ---

SIDECAR = b'{"sample_id": "S-1", "patient_id": "P-1"}'
"""A valid ``<input>.ids.json``: the seed the random sidecar mutations start from."""
SPARSE = 400 << 20
"""Size of the sparse (all-zero, no disk used) sidecar: read whole, it would take 400 MB."""
EDITS = ("truncate", "flip", "insert", "overwrite", "size")


def bad_sidecars() -> dict[str, bytes | int]:
    """Sidecars that must fail their input with a one-line error: label -> bytes (an int: a sparse file)."""
    deep_object = b'{"a": ' * 20_000 + b"1" + b"}" * 20_000
    return {
        "deep_list": b"[" * 30_000 + b"]" * 30_000,
        "deep_object": deep_object,
        "deep_unclosed": b"[{" * 50_000,
        "deep_value": b'{"sample_id": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        "huge_sparse": SPARSE,
        "just_over_cap": b'{"sample_id": "S"' + b" " * (64 << 10) + b"}",
        "list": b'["S-1"]',
        "number": b"5",
        "null": b"null",
        "string": b'"S-1"',
        "id_number": b'{"sample_id": 5}',
        "id_list": b'{"sample_id": ["S-1"]}',
        "id_object": b'{"patient_id": {"a": 1}}',
        "id_bool": b'{"patient_id": true}',
        "id_nan": b'{"sample_id": NaN}',
        "id_too_long": b'{"sample_id": "' + b"x" * 5000 + b'"}',
        "id_escape": b'{"sample_id": "\\u001b[2J"}',
        "id_newline": b'{"sample_id": "a\\nb"}',
        "unknown_key": b'{"sample_id": "S-1", "evil": "x"}',
        "garbage": bytes(range(256)) * 4,
        "not_utf8": b'{"sample_id": "\xff\xfe"}',
        "nul_bytes": b"\x00" * 4096,
        "truncated": SIDECAR[:17],
    }


def _special(path: Path, kind: str) -> None:
    """Make a FIFO, a folder, a dangling link or a link to ``/dev/zero`` at ``path``."""
    import os

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dangling":
        # a target of its own: links to one file are listed once
        path.symlink_to(path.with_name(f"{path.name}.gone"))
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")


def slide_seeds(folder: Path) -> dict[str, bytes]:
    """The inputs of :func:`seeds` and more slide kinds: the pyramid named as SVS and as NDPI, an MRXS
    index without its data folder, and a one-instance DICOM slide (when pydicom is installed)."""
    out = seeds(folder)
    out["pyramid.svs"] = out["pyramid.ndpi"] = out["pyramid.tiff"]
    out["index.mrxs"] = b"[GENERAL]\nSLIDE_VERSION = 1.0\n[HIERARCHICAL]\nHIER_COUNT = 0\n"
    try:
        import importlib.util

        import pydicom  # noqa: F401
    except ImportError:
        return out
    spec = importlib.util.spec_from_file_location(
        "_dicom_series", Path(__file__).parent / "sources" / "_dicom_series.py"
    )
    assert spec is not None and spec.loader is not None
    series = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(series)
    img = synthetic_field(384, 320, grid_centres(384, 320, 120), seed=4)
    out["slide.dcm"] = series.write_instance(
        folder / "slide.dcm", img, mpp=0.25, tile=128, codec="jpeg"
    ).read_bytes()
    return out


def random_edits(rng: np.random.Generator) -> list[Edit]:
    """1-3 edits of random kinds, positions and bytes."""
    return [
        (EDITS[int(rng.integers(len(EDITS)))], int(rng.integers(1 << 16)), rng.bytes(int(rng.integers(1, 9))))
        for _ in range(int(rng.integers(1, 4)))
    ]


def fuzz_batch_folder(
    folder: Path, clean: bytes, n: int, *, seed: int = 31, sidecars: Sequence[str] | None = None
) -> dict[str, str]:
    """Fill ``folder`` with ``n`` entries a batch must each give a summary row.

    Entries: clean images (``clean``'s bytes) beside each bad sidecar of :func:`bad_sidecars` (those
    labelled in ``sidecars``; None: all), and
    beside a FIFO, a folder and a dangling link named as their sidecar; images of every kind of
    :func:`slide_seeds` with random edits, a third of them with a randomly edited sidecar; a FIFO, a
    dangling link, a link to ``/dev/zero`` and an empty file named as images; an orphan sidecar.
    The structured entries come first, the random ones fill up to ``n``.

    Returns:
        Entry name -> the status its summary row must have: ``ok``, ``failed``, ``skipped``, or
        ``any`` (a randomly mutated input may still be readable). A failed image beside a bad
        sidecar must name that sidecar (``failed:<sidecar name>``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    want: dict[str, str] = {}
    bad = bad_sidecars()
    for k, label in enumerate(bad if sidecars is None else sidecars):
        data = bad[label]
        image = f"s{k:02d}_{label}.png"
        (folder / image).write_bytes(clean)
        sidecar = folder / f"{image}.ids.json"
        if isinstance(data, int):
            with sidecar.open("wb") as f:
                f.truncate(data)
        else:
            sidecar.write_bytes(data)
        want[image], want[sidecar.name] = f"failed:{sidecar.name}", "skipped"
    for kind in ("fifo", "folder", "dangling"):  # not a sidecar file: the image is screened without one
        image = f"t_{kind}.png"
        (folder / image).write_bytes(clean)
        _special(folder / f"{image}.ids.json", kind)
        # a dangling link is listed as an input whatever its name (it fails at read)
        want[image], want[f"{image}.ids.json"] = "ok", "any" if kind == "dangling" else "skipped"
    (folder / "u_good.png").write_bytes(clean)
    (folder / "u_good.png.ids.json").write_bytes(SIDECAR)
    want.update({"u_good.png": "ok", "u_good.png.ids.json": "skipped"})
    (folder / "u_orphan.png.ids.json").write_bytes(SIDECAR)
    want["u_orphan.png.ids.json"] = "skipped"
    for name, kind in (("v_fifo.png", "fifo"), ("v_zero.png", "dev_zero")):
        _special(folder / name, kind)
        want[name] = "skipped"
    _special(folder / "v_gone.tiff", "dangling")
    (folder / "v_empty.jpg").write_bytes(b"")
    want.update({"v_gone.tiff": "failed", "v_empty.jpg": "failed"})
    seed_bytes = slide_seeds(folder.parent / f"{folder.name}_seeds")
    kinds = sorted(seed_bytes)
    rng = np.random.default_rng(seed)
    i = 0
    while len(want) < n:
        key = kinds[i % len(kinds)]
        name = f"w{i:03d}.{key.rsplit('.', 1)[-1]}"
        (folder / name).write_bytes(mutate(seed_bytes[key], random_edits(rng)))
        want[name] = "any"
        if i % 3 == 2 and len(want) < n:
            (folder / f"{name}.ids.json").write_bytes(mutate(SIDECAR, random_edits(rng)))
            want[f"{name}.ids.json"] = "skipped"
        i += 1
    return want
