"""Open fields and slides behind one interface, and resolve the pixel size to use."""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import InputTooLargeError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources.base import ImageSource
from wsi_screen.sources.field import FieldSource
from wsi_screen.sources.field import read_image_file
from wsi_screen.sources.field import read_tiff_field
from wsi_screen.sources.slide import SlideSource

__all__ = [
    "FIELD_SUFFIXES",
    "SLIDE_SUFFIXES",
    "FieldSource",
    "ImageSource",
    "ResolvedMpp",
    "SlideSource",
    "input_stem",
    "not_regular",
    "open_source",
    "resolve_mpp",
]

log = logging.getLogger(__name__)

FIELD_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs", ".ome.tif", ".ome.tiff")
MAX_FIELD_PIXELS = 64_000_000  # single-level TIFFs up to this size are held in memory as fields
MPP_RANGE = (0.01, 5.0)  # plausible microscope pixel sizes; others are DPI artefacts, not specimen scale


def input_stem(path: Path) -> str:
    """File name without its image suffix (``a.ome.tiff`` -> ``a``)."""
    name = path.name
    for suffix in sorted(SLIDE_SUFFIXES + FIELD_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_supported(path: Path) -> bool:
    """Whether the file name has a suffix wsi-screen reads."""
    return path.name.lower().endswith(FIELD_SUFFIXES + SLIDE_SUFFIXES)


def not_regular(path: Path) -> str | None:
    """Why ``path`` is never opened, when it exists but is neither a regular file nor a folder.

    A FIFO, a device or a socket (links followed) is told by ``stat`` alone: opening a FIFO blocks
    until something writes to it, and reading a device may never end. None for anything else.

    Example:
        >>> not_regular(Path("/dev/null"))
        'not a regular file (a character device): never opened'
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # missing, a dangling link, a loop: read fails it by name
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), None)
    return None if kind is None else f"not a regular file ({kind}): never opened"


def _plausible(mpp: float | None, path: Path) -> float | None:
    if mpp is None:
        return None
    if MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        return mpp
    log.warning("%s: ignoring implausible pixel size %.4g um/px in the file metadata", path, mpp)
    return None


def open_source(path: str | Path, *, limits: LimitsConfig | None = None) -> ImageSource:
    """Open a field or slide; the caller closes it (or uses ``with``).

    Raises:
        InputError: missing, empty, corrupt, truncated or unsupported file; the message names it.
    """
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if not path.is_file():
        msg = f"{path}: not a file"
        raise InputError(msg)
    if path.stat().st_size == 0:
        msg = f"{path}: file is empty (0 bytes)"
        raise InputError(msg)
    if not is_supported(path):
        msg = (
            f"{path}: suffix {path.suffix!r} not supported; expected one of "
            f"{', '.join(FIELD_SUFFIXES + SLIDE_SUFFIXES)}"
        )
        raise UnsupportedInputError(msg)
    stem = input_stem(path)
    if path.name.lower().endswith(FIELD_SUFFIXES):
        arr, mpp = read_image_file(path, limits=limits)
        return FieldSource(arr, source_id=stem, path=path, mpp=mpp)
    try:
        slide = SlideSource(path, source_id=stem, limits=limits)
    except InputTooLargeError:
        raise  # refused on its declared geometry: never decoded some other way
    except InputError as e:  # e.g. a planar RGB TIFF field, which tiffslide does not open
        try:
            arr, mpp = read_tiff_field(path, max_pixels=MAX_FIELD_PIXELS)
        except InputError:
            raise e from None
        return FieldSource(arr, source_id=stem, path=path, mpp=_plausible(mpp, path))
    slide.mpp = _plausible(slide.mpp, path)
    w, h = slide.dimensions
    small = w * h <= MAX_FIELD_PIXELS and max(slide.level_samples, default=0) <= 4 * MAX_FIELD_PIXELS
    if slide.level_count == 1 and small:
        # A plain TIFF field: hold it in memory like a PNG (fast random crops, any pixel type).
        import tifffile

        try:
            arr = tifffile.imread(path, key=0)
        except Exception as e:  # tifffile raises many types on corrupt data
            msg = f"{path}: corrupt or truncated TIFF ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        finally:
            slide.close()
        return FieldSource(arr, source_id=stem, path=path, mpp=slide.mpp)
    return slide


@dataclass(frozen=True)
class ResolvedMpp:
    """The pixel size used for a source and where it came from."""

    mpp: float
    source: str  # "file", "user" or "model_default"
    warning: str | None = None


def resolve_mpp(src: ImageSource, *, user_mpp: float | None, model_mpp: float) -> ResolvedMpp:
    """Pick the microns per pixel: file metadata, else ``--mpp``, else the model's training scale.

    Pixels are taken as square (the x size is used); a file whose y size differs by more than 2 %
    gets a warning, since cells then look stretched to the detector and the classifier.
    """
    if src.mpp is not None:
        warns = []
        mpp_y = getattr(src, "mpp_y", None)
        if mpp_y is not None and abs(mpp_y - src.mpp) / src.mpp > 0.02:
            warns.append(
                f"pixels are not square ({src.mpp:.4g} x {mpp_y:.4g} um/px): the x size is used and cells "
                "look stretched; review the calls"
            )
        if user_mpp is not None and abs(user_mpp - src.mpp) / src.mpp > 0.01:
            warns.append(
                f"file records {src.mpp:.4g} um/px; --mpp {user_mpp:.4g} ignored (file metadata wins)"
            )
        return ResolvedMpp(src.mpp, "file", "; ".join(warns) or None)
    if user_mpp is not None:
        if user_mpp <= 0:
            msg = f"--mpp must be > 0, got {user_mpp}"
            raise InputError(msg)
        return ResolvedMpp(user_mpp, "user")
    warn = (
        f"no pixel size in the file and no --mpp given: assumed the model's training scale "
        f"{model_mpp:.4g} um/px; give --mpp if the scan differs"
    )
    return ResolvedMpp(model_mpp, "model_default", warn)
