"""Slides read through OpenSlide: MRXS, VMS/VMU, NDPI, SCN, BIF and the TIFF family.

OpenSlide comes from the ``openslide-bin`` wheel (no system library): ``pip install -e
'.[openslide]'``. The levels OpenSlide declares are checked against ``[limits]`` before any region
is read; a region that OpenSlide cannot read fails that read only (the tile is skipped and counted):
OpenSlide keeps an object in an error state after a failed read, so the slide is opened again.
The per-input time limit is checked before every read.

Formats made of several files (MRXS: the ``.mrxs`` file and the folder of the same name; VMS/VMU:
the files the index names) are read by OpenSlide from where the format puts them. For MRXS the
data folder must be a real folder beside the ``.mrxs`` file, holding no symbolic link.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.deadline import shielded
from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources.base import to_rgb8
from wsi_screen.sources.formats import library_label
from wsi_screen.sources.mpp import openslide_candidates
from wsi_screen.sources.mpp import pick
from wsi_screen.sources.pyramid import LevelGeometry
from wsi_screen.sources.pyramid import PyramidSource
from wsi_screen.sources.pyramid import check_levels

log = logging.getLogger(__name__)


def detect_format(path: Path) -> str | None:
    """OpenSlide's name for the format of ``path`` (``"aperio"``, ``"mirax"``...); None if unread.

    None also when OpenSlide is not installed.
    """
    try:
        import openslide
    except (ImportError, OSError):
        return None
    try:
        fmt = openslide.OpenSlide.detect_format(str(path))
    except Exception:  # noqa: BLE001 - OpenSlide raises on unreadable files: not its format
        return None
    return str(fmt) if fmt else None


def _check_companions(path: Path) -> None:
    """Refuse an MRXS slide whose data folder is a link or holds links (reads stay beside the file)."""
    if path.suffix.lower() != ".mrxs":
        return
    data = path.with_suffix("")
    if data.is_symlink() or not data.is_dir():
        msg = (
            f"{path}: an MRXS slide needs its data folder {data.name}/ beside it (a real folder, not a link)"
        )
        raise InputError(msg)
    links = [p.name for p in data.iterdir() if p.is_symlink()]
    if links:
        msg = f"{path}: its data folder holds symbolic links ({', '.join(sorted(links)[:3])}); never followed"
        raise InputError(msg)


def _check_size(path: Path, dims: tuple[int, int]) -> None:
    if min(dims) <= 0:
        msg = f"{path}: slide has zero size"
        raise InputError(msg)


class OpenSlideSource(PyramidSource):
    """A slide opened with OpenSlide behind :class:`~wsi_screen.sources.base.ImageSource`."""

    def __init__(
        self, path: Path, *, source_id: str | None = None, limits: LimitsConfig | None = None
    ) -> None:
        try:
            import openslide
        except (ImportError, OSError) as e:
            msg = f"{path}: reading this format needs OpenSlide: pip install -e '.[openslide]'"
            raise UnsupportedInputError(msg) from e
        self._openslide: Any = openslide
        self.path = path
        self.source_id = source_id or path.stem
        _check_companions(path)
        self._slide: Any = None
        self._slide = self._open()
        props = self._slide.properties
        try:
            geometry = []
            for i in range(self._slide.level_count):
                w, h = self._slide.level_dimensions[i]
                tw = int(props.get(f"openslide.level[{i}].tile-width", 0))
                th = int(props.get(f"openslide.level[{i}].tile-height", 0))
                geometry.append(LevelGeometry(int(w), int(h), tw, th, 4))
            self._dims = (geometry[0].width, geometry[0].height)
            self._downs = tuple(float(d) for d in self._slide.level_downsamples)
            _check_size(path, self._dims)
            check_levels(path, geometry, limits or LimitsConfig())
        except InputError:
            self.close()
            raise
        except (ValueError, IndexError, KeyError) as e:
            self.close()
            msg = f"{path}: OpenSlide declares an unreadable geometry ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        self._levels = [(g.width, g.height) for g in geometry]
        self.level_samples = tuple(g.width * g.height * 3 for g in geometry)
        self.vendor = str(props.get("openslide.vendor", ""))
        self.properties = dict(props)
        found, warns = openslide_candidates(props, path)
        picked = pick(found, path)
        self.mpp, self.mpp_y, self.mpp_origin = picked.x, picked.y, picked.origin
        self.mpp_warnings = (*warns, *picked.warnings)
        self.reader = library_label("openslide")

    def _open(self) -> Any:
        """Open the slide with OpenSlide.

        Raises:
            InputError: OpenSlide cannot read it (the message names the file).
        """
        try:
            return self._openslide.OpenSlide(str(self.path))
        except self._openslide.OpenSlideUnsupportedFormatError as e:
            msg = f"{self.path}: not a format OpenSlide reads"
            raise UnsupportedInputError(msg) from e
        except Exception as e:  # OpenSlideError and OSError on damaged files
            msg = f"{self.path}: cannot open with OpenSlide ({type(e).__name__}: {e})"
            raise InputError(msg) from e

    def level_dimensions(self, level: int) -> tuple[int, int]:
        """(width, height) of a level."""
        return self._levels[level]

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[np.uint8]:
        """Read a rectangle of ``level`` (RGBA from OpenSlide, composited onto white)."""
        ds = self._downs[level]
        origin = (math.floor(x * ds + 0.5), math.floor(y * ds + 0.5))
        try:
            with shielded():  # a checkpoint of the time limit before and after each read
                image = self._slide.read_region(origin, level, (width, height))
        except Exception as e:  # OpenSlideError on a damaged tile: the object is unusable after it
            self._reopen()
            msg = f"{self.path}: cannot read region at level {level} ({x}, {y}) ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        return to_rgb8(np.asarray(image), where=str(self.path))

    def _reopen(self) -> None:
        """Open the slide again after a failed read (OpenSlide's error state is sticky)."""
        self.close()
        try:
            self._slide = self._open()
        except InputError as e:
            log.warning("%s", e)

    def close(self) -> None:
        """Close the slide."""
        if self._slide is not None:
            self._slide.close()
            self._slide = None
