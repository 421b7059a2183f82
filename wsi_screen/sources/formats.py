"""What a file is, told by its first bytes (and its name only where the format has no magic).

The readers: ``tiffslide`` (TIFF family: SVS, OME-TIFF, generic pyramids), ``dicom`` (``wsidicom``:
DICOM VL Whole Slide Microscopy, one file or a folder of one series' instances), ``openslide``
(OpenSlide: MRXS, VMS/VMU, NDPI, SCN, BIF and the TIFF family) and ``pillow`` for fields (PNG,
JPEG, BMP). :func:`sniff` reads 132 bytes; nothing else of the file is read to choose a reader.
"""

from __future__ import annotations

import os
import stat
from importlib import metadata
from pathlib import Path

__all__ = [
    "DICOM_SUFFIXES",
    "FIELD_SUFFIXES",
    "MAX_DICOM_FILES",
    "OPENSLIDE_SUFFIXES",
    "READERS",
    "SLIDE_SUFFIXES",
    "dicom_folder_files",
    "is_dicom_folder",
    "library_label",
    "sniff",
]

FIELD_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs", ".ome.tif", ".ome.tiff")
DICOM_SUFFIXES = (".dcm",)
OPENSLIDE_SUFFIXES = (".ndpi", ".mrxs", ".vms", ".vmu", ".scn", ".bif", ".svslide")
"""Formats read through OpenSlide (``pip install -e '.[openslide]'``); tiffslide reads NDPI and SCN too."""
READERS = ("auto", "tiffslide", "openslide", "dicom")
"""``--reader`` choices: auto picks by content (:func:`wsi_screen.sources.open_source`)."""
MAX_DICOM_FILES = 4096
"""Most entries a DICOM slide folder may hold (a pyramid is a few instances, or a few hundred
when each level is split): listing stops there, before any file is opened."""

_DISTRIBUTIONS = {"openslide": "openslide-bin", "pillow": "pillow"}


def sniff(path: Path) -> str:
    """The kind of file ``path`` is, from its first 132 bytes.

    Returns:
        ``"dicom"`` (``DICM`` at byte 128), ``"tiff"`` (classic or BigTIFF, either byte order),
        ``"png"``, ``"jpeg"``, ``"bmp"`` or ``"unknown"`` (also for a file that cannot be read:
        the reader chosen then names the problem).

    Example:
        >>> sniff(Path("/dev/null"))
        'unknown'
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return "unknown"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "unknown"
        head = os.read(fd, 132)
    except OSError:
        return "unknown"
    finally:
        os.close(fd)
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:2] == b"BM":
        return "bmp"
    return "unknown"


def dicom_folder_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The DICOM files directly inside ``folder``, and why each other entry was left out.

    Only regular files are taken, never through a symbolic link (a link could lead anywhere on the
    disk) and never in sub-folders; hidden files are ignored. At most :data:`MAX_DICOM_FILES`
    entries are looked at.

    Raises:
        OSError: the folder cannot be listed.
        ValueError: the folder holds more than :data:`MAX_DICOM_FILES` entries.
    """
    files: list[Path] = []
    left: list[str] = []
    with os.scandir(folder) as entries:
        for n, entry in enumerate(entries):
            if n >= MAX_DICOM_FILES:
                msg = f"{folder}: more than {MAX_DICOM_FILES} entries; not a DICOM slide folder"
                raise ValueError(msg)
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                left.append(f"{entry.name}: a symbolic link (never followed)")
            elif not entry.is_file(follow_symlinks=False):
                left.append(f"{entry.name}: not a regular file")
            elif sniff(Path(entry.path)) == "dicom":
                files.append(Path(entry.path))
            else:
                left.append(f"{entry.name}: not a DICOM file")
    return sorted(files), left


def is_dicom_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of DICOM instances (one slide), not a case of field images.

    A folder is a DICOM slide when it holds a DICOM file directly and no field or slide image that
    another reader reads (by name); a folder that cannot be listed is not one.
    """
    if not path.is_dir():
        return False
    try:
        with os.scandir(path) as entries:
            names = [e.name.lower() for _, e in zip(range(MAX_DICOM_FILES), entries, strict=False)]
    except OSError:
        return False
    images = FIELD_SUFFIXES + SLIDE_SUFFIXES + OPENSLIDE_SUFFIXES
    if any(n.endswith(images) for n in names if not n.startswith(".")):
        return False
    try:
        files, _ = dicom_folder_files(path)
    except (OSError, ValueError):
        return False
    return bool(files)


def library_label(name: str) -> str:
    """``"<library> <version>"`` of the library a reader decodes with (``"tiffslide 3.0.1"``).

    Example:
        >>> library_label("tifffile").startswith("tifffile ")
        True
    """
    try:
        version = metadata.version(_DISTRIBUTIONS.get(name, name))
    except metadata.PackageNotFoundError:
        return name
    if (
        name == "openslide"
    ):  # the library's version, as OpenSlide names itself (openslide-bin 4.0.1.2 -> 4.0.1)
        try:
            import openslide

            version = str(openslide.__library_version__)
        except (ImportError, OSError, AttributeError):
            version = ".".join(version.split(".")[:3])
    return f"{name} {version}"
