"""The source contract: fields and slides behind one interface, level-0 pixel coordinates."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from typing import runtime_checkable

import numpy as np
from numpy.typing import NDArray

PAD_VALUE = 255  # smear background is pale: pad with white so padding never looks like a cell


@runtime_checkable
class ImageSource(Protocol):
    """A field or slide. ``read_region`` returns RGB uint8 (H x W x 3), padded outside the image.

    ``mpp`` is microns per level-0 pixel as read from the file (None if the file has none).
    """

    source_id: str
    path: Path | None
    mpp: float | None

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        ...

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample factor of each pyramid level (1.0 first)."""
        ...

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> NDArray[np.uint8]:
        """Read a region whose top-left is level-0 (x, y) and whose size is given in level pixels."""
        ...

    def thumbnail(self, max_side: int) -> NDArray[np.uint8]:
        """A downsampled RGB overview whose longer side is at most ``max_side``."""
        ...

    def close(self) -> None:
        """Release file handles."""
        ...

    def __enter__(self) -> ImageSource:
        """Use as a context manager; the source is closed on exit."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Close the source."""
        ...


def significant_bits(arr: NDArray[np.generic]) -> int:
    """Bit depth a 16-bit image really uses: 10, 12, 14 or 16 (from the maximum of its colour).

    Cameras store 10-, 12- or 14-bit samples in 16-bit files; scaling those by 1/257 would leave
    the image nearly black. A dim 12-bit image (maximum 1,800, say) still counts as 12-bit. An
    alpha channel (RGBA, grey + alpha) is left out: an opaque 16-bit alpha is 65,535 whatever the
    colour depth.

    Example:
        >>> significant_bits(np.array([[0, 4095]], np.uint16))
        12
    """
    a = np.asarray(arr)
    if a.dtype != np.uint16:
        return 8
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., : a.shape[2] - 1]
    top = int(np.max(a, initial=0)).bit_length()
    return next(b for b in (10, 12, 14, 16) if top <= b)


def to_rgb8(arr: NDArray[np.generic], *, where: str, bits: int = 16) -> NDArray[np.uint8]:
    """Convert grayscale, RGBA, 16-bit or float images to RGB uint8.

    RGBA is composited onto white; 16-bit samples are scaled from ``bits`` significant bits
    (:func:`significant_bits`) to 8; floats in [0, 1] are scaled by 255.
    """
    from wsi_screen.errors import InputError

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype == np.uint16:
        a = _scale16(a, bits)
    elif a.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(a, initial=0.0)) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a) * scale, 0, 255).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        if a.dtype.kind in "iu" and a.size and int(a.max()) <= 255 and int(a.min()) >= 0:
            a = a.astype(np.uint8)
        else:
            msg = f"{where}: unsupported pixel type {a.dtype}"
            raise InputError(msg)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        rgb = a[..., :3].astype(np.float32) * alpha + PAD_VALUE * (1.0 - alpha)
        return np.asarray(np.clip(rgb + 0.5, 0, 255), dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[2] == 2:  # grey + alpha
        return to_rgb8(np.dstack([a[..., 0]] * 3 + [a[..., 1]]), where=where, bits=bits)
    msg = f"{where}: unsupported image shape {a.shape}"
    raise InputError(msg)


def _scale16(a: NDArray[np.generic], bits: int) -> NDArray[np.uint8]:
    """16-bit samples to 8 bits, colour from ``bits`` significant bits.

    An alpha channel is scaled from the same depth when it fits in it (opaque = 2**bits - 1), else
    from 16 bits (opaque = 65,535).
    """
    full = (1 << bits) - 1
    out: NDArray[np.uint8] = ((np.minimum(a, full).astype(np.uint32) * 255 + full // 2) // full).astype(
        np.uint8
    )
    if a.ndim == 3 and a.shape[2] in (2, 4) and int(a[..., -1].max(initial=0)) > full:
        out[..., -1] = ((a[..., -1].astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return out


def blockwise_thumbnail(source: ImageSource, max_side: int, *, block: int = 4096) -> NDArray[np.uint8]:
    """Overview of a pyramid from the smallest level that is still at least ``max_side``.

    The level is read in ``block`` x ``block`` pieces, each shrunk into place, so a slide without a
    pyramid never has its full-resolution image in memory. ``source`` needs ``level_dimensions``.
    """
    import math

    import cv2

    w, h = source.dimensions
    downs = source.level_downsamples
    level = max((i for i, ds in enumerate(downs) if max(w, h) / ds >= max_side), default=0)
    lw, lh = source.level_dimensions(level)  # type: ignore[attr-defined]
    f = min(1.0, max_side / max(lw, lh))
    tw, th = max(1, math.floor(lw * f)), max(1, math.floor(lh * f))
    out = np.full((th, tw, 3), PAD_VALUE, dtype=np.uint8)
    ds = downs[level]
    for by in range(0, lh, block):
        for bx in range(0, lw, block):
            bw, bh = min(block, lw - bx), min(block, lh - by)
            ox0, oy0 = math.floor(bx * f), math.floor(by * f)
            ox1 = tw if bx + bw >= lw else math.floor((bx + bw) * f)
            oy1 = th if by + bh >= lh else math.floor((by + bh) * f)
            if ox1 <= ox0 or oy1 <= oy0:
                continue
            img = source.read_region(round(bx * ds), round(by * ds), bw, bh, level=level)
            out[oy0:oy1, ox0:ox1] = cv2.resize(img, (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_AREA)
    return out


MAX_READ_PIXELS = 1 << 27
"""Most pixels one region read may return (134 Mpx, 400 MB of RGB): a slide that declares a level of
billions of pixels without a coarser one would otherwise make region scoring allocate tens of GB."""


def check_read_size(path: object, width: int, height: int) -> None:
    """Refuse a region read of more than :data:`MAX_READ_PIXELS` before anything is allocated.

    Raises:
        InputError: naming the file and the size asked for.
    """
    if width * height > MAX_READ_PIXELS:
        from wsi_screen.errors import InputError

        msg = (
            f"{path}: a read of {width:,} x {height:,} px is more than the {MAX_READ_PIXELS:,} px one "
            "region may hold (a level this large needs a coarser pyramid level)"
        )
        raise InputError(msg)


def pad_read(arr: NDArray[np.uint8], x: int, y: int, width: int, height: int) -> NDArray[np.uint8]:
    """Cut a (width x height) window at (x, y) from an in-memory RGB image, padding outside."""
    h, w = arr.shape[:2]
    out = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, w), min(y + height, h)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = arr[y0:y1, x0:x1]
    return out
