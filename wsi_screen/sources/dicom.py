"""DICOM whole-slide images (VL Whole Slide Microscopy) read tile by tile with wsidicom.

A DICOM slide is a *series*: one instance per pyramid level (often one file each, sometimes one
level split over several files), plus label, overview and thumbnail images. :class:`DicomSource`
opens a single ``.dcm`` file or a folder holding the instances of one series as one slide:

- Files are listed without following links: a folder's entries that are symbolic links,
  sub-folders or not DICOM are left out (logged), and at most
  :data:`~wsi_screen.sources.formats.MAX_DICOM_FILES` are looked at. Each file is opened once,
  without following a link, and wsidicom reads only from those open files.
- Every file's header is read (pixel data skipped) and the pyramid's declared geometry checked
  against ``[limits]`` before any frame is read; a folder mixing the images of several series
  is refused, naming them.
- Each frame's own codestream header is checked against the tile size the instance declares
  before it is decoded (:func:`~wsi_screen.sources.codestream.declared_size`); a frame that
  cannot be read or decoded fails its region read (the tile is then skipped and counted).
- The per-input time limit is checked before every frame.

JPEG, JPEG 2000, JPEG-LS and RLE frames go through wsidicom's decoders (Pillow, imagecodecs).
Needs the ``[dicom]`` extra: ``pip install -e '.[dicom]'``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.deadline import shielded
from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import InputTooLargeError
from wsi_screen.limits import LimitsConfig
from wsi_screen.sources.base import to_rgb8
from wsi_screen.sources.codestream import declared_size
from wsi_screen.sources.formats import dicom_folder_files
from wsi_screen.sources.formats import library_label
from wsi_screen.sources.mpp import PixelSize
from wsi_screen.sources.mpp import pick
from wsi_screen.sources.pyramid import LevelGeometry
from wsi_screen.sources.pyramid import PyramidSource
from wsi_screen.sources.pyramid import check_levels

log = logging.getLogger(__name__)

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
"""VL Whole Slide Microscopy Image Storage."""
_HEADER_TAGS = ["SOPClassUID", "SeriesInstanceUID", "ImageType", "Rows", "Columns", "SamplesPerPixel",
                "NumberOfFrames", "TotalPixelMatrixColumns", "TotalPixelMatrixRows"]  # fmt: skip


@dataclass(frozen=True)
class _Header:
    """What one instance file declares (read before wsidicom sees the file)."""

    path: Path
    series: str
    image_type: str  # VOLUME, LABEL, OVERVIEW, THUMBNAIL
    width: int
    height: int
    tile_width: int
    tile_height: int
    samples: int
    frames: int


def _open_file(path: Path, *, follow: bool) -> IO[bytes]:
    """Open ``path`` for reading; with ``follow`` False a symbolic link is refused (``O_NOFOLLOW``)."""
    flags = os.O_RDONLY | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    return os.fdopen(fd, "rb")


def _read_header(path: Path, stream: IO[bytes]) -> _Header | None:
    """The header of one file (pixel data skipped); None for DICOM that is not a WSI image.

    Raises:
        InputError: not a readable DICOM file.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True, defer_size=4096, specific_tags=_HEADER_TAGS)
        if str(ds.get("SOPClassUID", "")) != WSI_SOP_CLASS:
            return None
        image_type = list(ds.get("ImageType", []))
        tw, th = int(ds.Columns), int(ds.Rows)
        return _Header(
            path=path,
            series=str(ds.get("SeriesInstanceUID", "")),
            image_type=str(image_type[2]).upper() if len(image_type) > 2 else "VOLUME",
            width=int(ds.get("TotalPixelMatrixColumns", tw)),
            height=int(ds.get("TotalPixelMatrixRows", th)),
            tile_width=tw,
            tile_height=th,
            samples=int(ds.get("SamplesPerPixel", 1)),
            frames=int(ds.get("NumberOfFrames", 1)),
        )
    except Exception as e:  # pydicom raises many types on damaged files
        msg = f"{path}: not a readable DICOM file ({type(e).__name__}: {e})"
        raise InputError(msg) from e
    finally:
        stream.seek(0)


def _pick_series(where: Path, headers: list[_Header]) -> list[_Header]:
    """The instances of the one series that holds the slide's pyramid (VOLUME images).

    Raises:
        InputError: no whole-slide image at all, or the pyramids of several series.
    """
    volumes: dict[str, list[_Header]] = defaultdict(list)
    for h in headers:
        if h.image_type == "VOLUME":
            volumes[h.series].append(h)
    if not volumes:
        msg = f"{where}: no DICOM whole-slide image (VOLUME) instance found"
        raise UnsupportedInputError(msg)
    if len(volumes) > 1:
        msg = (
            f"{where}: holds the images of {len(volumes)} DICOM series ({', '.join(sorted(volumes))}); "
            "a DICOM slide folder holds the instances of one series"
        )
        raise InputError(msg)
    (series,) = volumes
    return [h for h in headers if h.series == series]


def _check_headers(where: Path, headers: list[_Header], limits: LimitsConfig) -> None:
    """Apply the ``[limits]`` caps to the declared pyramid (each level's size, tiles and frames).

    Raises:
        InputTooLargeError: a cap exceeded, naming it.
    """
    levels: dict[tuple[int, int], _Header] = {}
    for h in headers:
        if h.image_type != "VOLUME":
            continue
        if min(h.width, h.height, h.tile_width, h.tile_height, h.samples) <= 0:
            msg = f"{h.path}: declares an empty image ({h.width} x {h.height}, tiles {h.tile_width} x {h.tile_height})"
            raise InputError(msg)
        if h.frames > limits.max_tiles:
            msg = f"{h.path}: declares {h.frames} frames, more than limits.max_tiles ({limits.max_tiles})"
            raise InputTooLargeError(msg)
        levels.setdefault((h.width, h.height), h)
    geometry = [
        LevelGeometry(h.width, h.height, h.tile_width, h.tile_height, h.samples)
        for h in sorted(levels.values(), key=lambda h: -h.width)
    ]
    check_levels(where, geometry, limits)


def _pixel_sizes(base: Any, dims: tuple[int, int]) -> list[PixelSize]:
    """The base level's Pixel Measures (mm per pixel), then its imaged size over its pixel matrix."""
    out = []
    spacing = base.pixel_spacing  # column spacing is the x size
    if spacing is not None and float(spacing.width) > 0 and float(spacing.height) > 0:
        out.append(
            PixelSize(
                float(spacing.width) * 1e3, float(spacing.height) * 1e3, "DICOM Pixel Measures (PixelSpacing)"
            )
        )
    imaged = base.default_instance.image_data.imaged_size
    if imaged is not None and float(imaged.width) > 0 and float(imaged.height) > 0:
        x, y = float(imaged.width) * 1e3 / dims[0], float(imaged.height) * 1e3 / dims[1]
        out.append(PixelSize(x, y, "DICOM Imaged Volume Width/Height"))
    return out


class DicomSource(PyramidSource):
    """A DICOM whole-slide image (one file, or a folder of one series) behind :class:`ImageSource`."""

    def __init__(
        self, path: Path, *, source_id: str | None = None, limits: LimitsConfig | None = None
    ) -> None:
        try:
            from upath import UPath
            from wsidicom import WsiDicom
            from wsidicom.file.io.wsidicom_io import WsiDicomReadIO
            from wsidicom.file.wsidicom_file_source import WsiDicomFileSource
        except ImportError as e:
            msg = f"{path}: reading DICOM slides needs wsidicom: pip install -e '.[dicom]'"
            raise UnsupportedInputError(msg) from e
        self.path = path
        self.source_id = source_id or path.name
        self._files: list[tuple[Path, IO[bytes]]] = []
        self._slide: Any = None
        try:
            headers = self._headers(path)
            chosen = _pick_series(path, headers)
            _check_headers(path, chosen, limits or LimitsConfig())
            keep = {h.path for h in chosen}
            streams = [WsiDicomReadIO(f, UPath(p)) for p, f in self._files if p in keep]
            self._slide = WsiDicom(WsiDicomFileSource(streams), True)
            self._levels = sorted(self._slide.pyramid.levels, key=lambda lv: -int(lv.size.width))
        except InputError:
            self.close()
            raise
        except Exception as e:  # wsidicom and pydicom raise many types on damaged series
            self.close()
            msg = f"{path}: cannot open as a DICOM slide ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        base = self._levels[0]
        self._dims = (int(base.size.width), int(base.size.height))
        self._downs = tuple(self._dims[0] / int(lv.size.width) for lv in self._levels)
        self.level_samples = tuple(int(lv.size.width) * int(lv.size.height) * 3 for lv in self._levels)
        self.reader = library_label("wsidicom")
        picked = pick(_pixel_sizes(base, self._dims), path)
        self.mpp, self.mpp_y, self.mpp_origin = picked.x, picked.y, picked.origin
        self.mpp_warnings = picked.warnings

    def _headers(self, path: Path) -> list[_Header]:
        """Open the file or the folder's DICOM files (kept open in ``_files``) and read their headers."""
        if path.is_dir():
            try:
                paths, left = dicom_folder_files(path)
            except (OSError, ValueError) as e:
                msg = f"{path}: cannot list the DICOM folder ({e})"
                raise InputError(msg) from e
            for why in left:
                log.info("%s: %s; left out", path, why)
            follow = False
        else:
            paths, follow = [path], True
        if not paths:
            msg = f"{path}: no DICOM file in the folder"
            raise InputError(msg)
        headers = []
        for p in paths:
            try:
                stream = _open_file(p, follow=follow)
            except OSError as e:
                msg = f"{p}: cannot open ({e.strerror or e})"
                raise InputError(msg) from e
            self._files.append((p, stream))
            header = _read_header(p, stream)
            if header is None:
                log.info("%s: not a whole-slide image instance; left out", p)
            else:
                headers.append(header)
        return headers

    def level_dimensions(self, level: int) -> tuple[int, int]:
        """(width, height) of a level."""
        size = self._levels[level].size
        return int(size.width), int(size.height)

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[np.uint8]:
        """Assemble the rectangle from the frames it touches, each checked before it is decoded."""
        from wsidicom.geometry import Point

        instance = self._levels[level].default_instance
        data = instance.image_data
        z, path = instance.default_z, instance.default_path
        tw, th = int(data.tile_size.width), int(data.tile_size.height)
        out = np.empty((height, width, 3), dtype=np.uint8)
        for ty in range(y // th, math.ceil((y + height) / th)):
            for tx in range(x // tw, math.ceil((x + width) / tw)):
                with shielded():  # a checkpoint of the time limit before and after each frame
                    tile = self._tile(data, Point(tx, ty), z, path, (tw, th), level)
                ox0, oy0 = max(tx * tw, x), max(ty * th, y)
                ox1, oy1 = min((tx + 1) * tw, x + width), min((ty + 1) * th, y + height)
                out[oy0 - y : oy1 - y, ox0 - x : ox1 - x] = tile[
                    oy0 - ty * th : oy1 - ty * th, ox0 - tx * tw : ox1 - tx * tw
                ]
        return out

    def _tile(
        self, data: Any, point: Any, z: float, path: str, size: tuple[int, int], level: int
    ) -> NDArray[np.uint8]:
        """One frame, decoded to RGB (tile size) after its declared size has been checked.

        Raises:
            InputError: the frame cannot be read, declares another size, or does not decode.
        """
        where = f"{self.path}: level {level} tile ({point.x}, {point.y})"
        try:
            frame = data.get_encoded_tile(point, z, path)
            declared = declared_size(frame)
        except Exception as e:  # a frame past the end of the file, a broken codestream header
            msg = f"{where}: cannot read the frame ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        if declared is not None and declared != size:
            msg = f"{where}: the frame declares {declared[0]} x {declared[1]} px, the instance {size[0]} x {size[1]}; not decoded"
            raise InputError(msg)
        try:
            decoder = getattr(data, "decoder", None)
            pixels = (
                decoder.decode(frame) if decoder is not None else data.get_decoded_tile(point, z, path, False)
            )
        except Exception as e:  # decoders raise many types on damaged frames
            msg = f"{where}: cannot decode the frame ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        rgb = to_rgb8(np.asarray(pixels), where=str(self.path))
        if rgb.shape[:2] != (size[1], size[0]):
            msg = f"{where}: decoded to {rgb.shape[1]} x {rgb.shape[0]} px, not {size[0]} x {size[1]}"
            raise InputError(msg)
        return rgb

    def close(self) -> None:
        """Close the slide and every file opened for it."""
        if self._slide is not None:
            self._slide.close()
            self._slide = None
        for _, f in self._files:
            f.close()
        self._files = []
