"""Pick the reader for an input by what it is (its first bytes; its name only as a fallback).

``auto``: a folder of DICOM instances and a file starting like DICOM go to wsidicom; PNG, JPEG
and BMP to Pillow (a field); TIFF to tiffslide (small single-level TIFFs become fields; a
Ventana BIF, whose overlapping tiles tiffslide does not stitch, to OpenSlide when installed,
and a TIFF tiffslide cannot open to OpenSlide when OpenSlide knows its vendor); a file named as an
OpenSlide format (MRXS, whose index starts like a JPEG; VMS, VMU) and anything else OpenSlide
recognises to OpenSlide. ``tiffslide``, ``openslide`` and
``dicom`` force one reader. A slide refused for its declared size is never tried with another
reader.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import InputTooLargeError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources.base import ImageSource
from wsi_screen.sources.field import FieldSource
from wsi_screen.sources.field import read_image_file
from wsi_screen.sources.field import read_tiff_field
from wsi_screen.sources.formats import DICOM_SUFFIXES
from wsi_screen.sources.formats import FIELD_SUFFIXES
from wsi_screen.sources.formats import OPENSLIDE_SUFFIXES
from wsi_screen.sources.formats import READERS
from wsi_screen.sources.formats import SLIDE_SUFFIXES
from wsi_screen.sources.formats import is_dicom_folder
from wsi_screen.sources.formats import library_label
from wsi_screen.sources.formats import sniff
from wsi_screen.sources.mpp import MPP_RANGE
from wsi_screen.sources.slide import SlideSource

log = logging.getLogger(__name__)

MAX_FIELD_PIXELS = 64_000_000  # single-level TIFFs up to this size are held in memory as fields
OPENSLIDE_FIRST = ("ventana",)
"""tiffslide vendors whose slides OpenSlide reads better (BIF: overlapping tiles), when installed."""


def open_with(
    path: Path, stem: str, *, reader: str = "auto", limits: LimitsConfig | None = None
) -> ImageSource:
    """Open ``path`` (a file, or a DICOM folder) with ``reader`` (one of :data:`READERS`).

    Raises:
        InputError: missing, empty, corrupt or unsupported input, naming it.
    """
    if reader not in READERS:
        msg = f"{path}: unknown reader {reader!r}; expected one of {', '.join(READERS)}"
        raise UnsupportedInputError(msg)
    if path.is_dir():
        return _open_folder(path, stem, reader, limits)
    if not path.is_file():
        msg = f"{path}: not a file"
        raise InputError(msg)
    if path.stat().st_size == 0:
        msg = f"{path}: file is empty (0 bytes)"
        raise InputError(msg)
    if reader == "dicom":
        return _dicom(path, stem, limits)
    if reader == "openslide":
        return _openslide(path, stem, limits)
    if reader == "tiffslide":
        return open_tiff(path, stem, limits, fallback=False)
    kind = _kind(path)
    if kind == "dicom":
        return _dicom(path, stem, limits)
    if kind == "field":
        arr, mpp = read_image_file(path, limits=limits)
        return _field(arr, stem, path, mpp, "pillow")
    if kind == "tiff":
        return open_tiff(path, stem, limits, fallback=True)
    if kind == "openslide":
        return _openslide(path, stem, limits)
    msg = (
        f"{path}: suffix {path.suffix!r} not supported and not a format wsi-screen recognises; expected "
        f"one of {', '.join(FIELD_SUFFIXES + SLIDE_SUFFIXES + DICOM_SUFFIXES + OPENSLIDE_SUFFIXES)}"
    )
    raise UnsupportedInputError(msg)


def _kind(path: Path) -> str:
    """``dicom``, ``field``, ``tiff``, ``openslide`` or ``unknown``: content first, then the name."""
    magic = sniff(path)
    name = path.name.lower()
    if magic in ("dicom", "tiff"):
        return magic
    if name.endswith(OPENSLIDE_SUFFIXES):
        return "openslide"  # an MRXS index starts like a JPEG (its preview)
    if magic in ("png", "jpeg", "bmp"):
        return "field"
    if name.endswith(FIELD_SUFFIXES):
        return "field"  # a damaged field: Pillow names the problem
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(SLIDE_SUFFIXES):
        return "tiff"
    from wsi_screen.sources.openslide_source import detect_format

    return "openslide" if detect_format(path) else "unknown"


def _open_folder(path: Path, stem: str, reader: str, limits: LimitsConfig | None) -> ImageSource:
    if reader in ("auto", "dicom") and (reader == "dicom" or is_dicom_folder(path)):
        return _dicom(path, stem, limits)
    msg = f"{path}: a folder, and not one of DICOM instances (a folder of field images is a case)"
    raise InputError(msg)


def _dicom(path: Path, stem: str, limits: LimitsConfig | None) -> ImageSource:
    from wsi_screen.sources.dicom import DicomSource

    return DicomSource(path, source_id=stem, limits=limits)


def _openslide(path: Path, stem: str, limits: LimitsConfig | None) -> ImageSource:
    from wsi_screen.sources.openslide_source import OpenSlideSource

    return OpenSlideSource(path, source_id=stem, limits=limits)


def _field(arr: object, stem: str, path: Path, mpp: float | None, library: str) -> FieldSource:
    """A field held in memory, naming the library that decoded it."""
    src = FieldSource(arr, source_id=stem, path=path, mpp=mpp)  # type: ignore[arg-type]
    src.reader = library_label(library)
    return src


def open_tiff(path: Path, stem: str, limits: LimitsConfig | None, *, fallback: bool) -> ImageSource:
    """Open a TIFF-family file with tiffslide (a small single-level TIFF as a field).

    With ``fallback``, a TIFF tiffslide cannot open is read as a planar field with tifffile, else
    with OpenSlide when OpenSlide knows its vendor; a BIF goes to OpenSlide first.

    Raises:
        InputError: no reader opens it (tiffslide's error), or its declared geometry is too large.
    """
    try:
        slide = SlideSource(path, source_id=stem, limits=limits)
    except InputTooLargeError:
        raise  # refused on its declared geometry: never decoded some other way
    except InputError as e:  # e.g. a planar RGB TIFF field, which tiffslide does not open
        if not fallback:
            raise
        try:
            arr, mpp = read_tiff_field(path, max_pixels=MAX_FIELD_PIXELS)
        except InputError:
            return _openslide_instead(path, stem, limits, e)
        field = _field(arr, stem, path, _plausible(mpp, path), "tifffile")
        field.mpp_origin = "TIFF resolution tags" if field.mpp is not None else None
        return field
    if fallback and slide.vendor in OPENSLIDE_FIRST:
        try:
            other = _openslide(path, stem, limits)
        except InputTooLargeError:
            slide.close()
            raise
        except InputError as e:
            log.info("%s: OpenSlide does not read it (%s); read with tiffslide", path, e)
        else:
            slide.close()
            return other
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
        field = _field(arr, stem, path, slide.mpp, "tifffile")
        field.mpp_y, field.mpp_origin, field.mpp_warnings = slide.mpp_y, slide.mpp_origin, slide.mpp_warnings
        return field
    return slide


def _openslide_instead(path: Path, stem: str, limits: LimitsConfig | None, first: InputError) -> ImageSource:
    """OpenSlide for a TIFF tiffslide cannot open, when OpenSlide knows its vendor; else ``first``."""
    from wsi_screen.sources.openslide_source import detect_format

    vendor = detect_format(path)
    if vendor is None or vendor == "generic-tiff":
        raise first
    log.info("%s: tiffslide cannot open it; OpenSlide reads it as %s", path, vendor)
    return _openslide(path, stem, limits)


def _plausible(mpp: float | None, path: Path) -> float | None:
    if mpp is None:
        return None
    if MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:  # plausible microscope pixel sizes, not DPI artefacts
        return mpp
    log.warning("%s: ignoring implausible pixel size %.4g um/px in the file metadata", path, mpp)
    return None
