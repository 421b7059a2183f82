"""Open fields and slides behind one interface, and resolve the pixel size to use."""

from __future__ import annotations

import hashlib
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources.base import ImageSource
from wsi_screen.sources.choose import open_with
from wsi_screen.sources.field import FieldSource
from wsi_screen.sources.formats import DICOM_SUFFIXES
from wsi_screen.sources.formats import FIELD_SUFFIXES
from wsi_screen.sources.formats import OPENSLIDE_SUFFIXES
from wsi_screen.sources.formats import READERS
from wsi_screen.sources.formats import SLIDE_SUFFIXES
from wsi_screen.sources.formats import dicom_folder_files
from wsi_screen.sources.formats import is_dicom_folder
from wsi_screen.sources.slide import SlideSource

__all__ = [
    "DICOM_SUFFIXES",
    "FIELD_SUFFIXES",
    "OPENSLIDE_SUFFIXES",
    "READERS",
    "SLIDE_SUFFIXES",
    "FieldSource",
    "ImageSource",
    "ResolvedMpp",
    "SlideSource",
    "input_sha256",
    "input_stem",
    "is_case_folder",
    "is_dicom_folder",
    "is_slide_source",
    "not_regular",
    "open_source",
    "resolve_mpp",
]

log = logging.getLogger(__name__)

_ALL_SUFFIXES = SLIDE_SUFFIXES + FIELD_SUFFIXES + DICOM_SUFFIXES + OPENSLIDE_SUFFIXES


def input_stem(path: Path) -> str:
    """File name without its image suffix (``a.ome.tiff`` -> ``a``)."""
    name = path.name
    for suffix in sorted(_ALL_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_supported(path: Path) -> bool:
    """Whether the file name has a suffix wsi-screen reads (a DICOM instance, an OpenSlide format too)."""
    return path.name.lower().endswith(_ALL_SUFFIXES)


def is_case_folder(path: Path) -> bool:
    """Whether ``path`` is a folder screened as a case (of fields), not a DICOM slide folder."""
    return path.is_dir() and not is_dicom_folder(path)


def is_slide_source(src: ImageSource) -> bool:
    """Whether ``src`` is a slide (a pyramid, or a slide format read lazily), not a field."""
    return len(src.level_downsamples) > 1 or not isinstance(src, FieldSource)


def input_sha256(path: Path) -> str:
    """The content hash of an input: a file's sha256; for a DICOM folder, over its instances.

    A DICOM folder's hash is sha256 over ``name<TAB>sha256`` lines of the DICOM files it reads
    (:func:`~wsi_screen.sources.formats.dicom_folder_files`), in name order.

    Raises:
        OSError: a file cannot be read.
    """
    from wsi_screen.io import sha256_file

    if not path.is_dir():
        return sha256_file(path)
    try:
        files, _ = dicom_folder_files(path)
    except ValueError as e:
        raise OSError(str(e)) from e
    lines = [f"{p.name}\t{sha256_file(p)}" for p in files]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


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


def open_source(path: str | Path, *, limits: LimitsConfig | None = None, reader: str = "auto") -> ImageSource:
    """Open a field or slide (a file, or a folder of DICOM instances); the caller closes it.

    ``reader`` (``--reader``): ``auto`` picks by content (:mod:`wsi_screen.sources.choose`);
    ``tiffslide``, ``openslide`` or ``dicom`` forces one.

    Raises:
        InputError: missing, empty, corrupt, truncated or unsupported input; the message names it.
    """
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    stem = path.name if path.is_dir() else input_stem(path)
    return open_with(path, stem, reader=reader, limits=limits)


@dataclass(frozen=True)
class ResolvedMpp:
    """The pixel size used for a source and where it came from."""

    mpp: float
    source: str  # "file", "user" or "model_default"
    warning: str | None = None
    origin: str | None = None
    """With ``source`` "file": the metadata it was read from (``"Aperio MPP (ImageDescription)"``...)."""


def resolve_mpp(src: ImageSource, *, user_mpp: float | None, model_mpp: float) -> ResolvedMpp:
    """Pick the microns per pixel: file metadata, else ``--mpp``, else the model's training scale.

    Pixels are taken as square (the x size is used); a file whose y size differs by more than 5 %
    gets a warning, since cells then look stretched to the detector and the classifier. So do the
    contradictions the source found in its metadata (``mpp_warnings``: two places disagreeing, a
    resolution with the unit "none"), whichever pixel size is used.
    """
    warns = list(getattr(src, "mpp_warnings", ()))
    origin = getattr(src, "mpp_origin", None)
    if src.mpp is not None:
        mpp_y = getattr(src, "mpp_y", None)
        if origin is None and mpp_y is not None and abs(mpp_y - src.mpp) / src.mpp > 0.05:
            warns.append(  # a source that has not checked its own pixels' shape
                f"pixels are not square ({src.mpp:.4g} x {mpp_y:.4g} um/px): the x size is used and cells "
                "look stretched; review the calls"
            )
        if user_mpp is not None and abs(user_mpp - src.mpp) / src.mpp > 0.01:
            warns.append(
                f"file records {src.mpp:.4g} um/px; --mpp {user_mpp:.4g} ignored (file metadata wins)"
            )
        return ResolvedMpp(src.mpp, "file", "; ".join(warns) or None, origin or "file metadata")
    if user_mpp is not None:
        if user_mpp <= 0:
            msg = f"--mpp must be > 0, got {user_mpp}"
            raise InputError(msg)
        return ResolvedMpp(user_mpp, "user", "; ".join(warns) or None)
    warns.append(
        f"no pixel size in the file and no --mpp given: assumed the model's training scale "
        f"{model_mpp:.4g} um/px; give --mpp if the scan differs"
    )
    return ResolvedMpp(model_mpp, "model_default", "; ".join(warns))
