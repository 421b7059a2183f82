"""Pyramidal slides (TIFF, SVS, OME-TIFF) read lazily with tiffslide; never read whole."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.deadline import shielded
from wsi_screen.errors import InputError
from wsi_screen.errors import UnsupportedInputError
from wsi_screen.limits import LimitsConfig
from wsi_screen.limits import check_slide_geometry
from wsi_screen.sources.base import PAD_VALUE
from wsi_screen.sources.base import blockwise_thumbnail
from wsi_screen.sources.base import check_read_size
from wsi_screen.sources.base import to_rgb8
from wsi_screen.sources.formats import library_label
from wsi_screen.sources.mpp import pick
from wsi_screen.sources.mpp import tiff_candidates


class SlideSource:
    """A tiffslide-backed source with level-0 coordinates and white padding at edges."""

    def __init__(
        self, path: Path, *, source_id: str | None = None, limits: LimitsConfig | None = None
    ) -> None:
        import tiffslide

        self.path: Path | None = path
        self.source_id = source_id or path.stem
        try:
            self._slide = tiffslide.TiffSlide(path)
            props = self._slide.properties
            self._dims = tuple(int(v) for v in self._slide.dimensions)
            self._downs = tuple(float(d) for d in self._slide.level_downsamples)
        except Exception as e:  # tifffile raises many types for corrupt files
            if hasattr(self, "_slide"):
                self._slide.close()
            msg = f"{path}: cannot open as a slide ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        if self._dims[0] <= 0 or self._dims[1] <= 0:
            self._slide.close()
            msg = f"{path}: slide has zero size"
            raise InputError(msg)
        try:
            chunks = _decode_units(self._slide, props, path)
            check_slide_geometry(
                path, props, (self._dims[0], self._dims[1]), limits or LimitsConfig(), chunks=chunks
            )
        except InputError:
            self._slide.close()
            raise
        self.level_samples = tuple(math.prod(shape) for shape, _ in chunks)
        """Samples (pixels x channels) of each level, as declared."""
        self.level_count = len(self._downs)
        self.vendor = str(props.get("tiffslide.vendor") or "")
        try:  # every place the file records a pixel size; the first plausible one is used
            found, warns = tiff_candidates(self._slide.ts_tifffile, props, path)
        except Exception:  # noqa: BLE001 - damaged tags: no pixel size from the file
            found, warns = [], []
        picked = pick(found, path)
        self.mpp: float | None = picked.x
        self.mpp_y: float | None = picked.y
        self.mpp_origin: str | None = picked.origin
        """Which metadata the pixel size came from (``"Aperio MPP (ImageDescription)"``...)."""
        self.mpp_warnings: tuple[str, ...] = (*warns, *picked.warnings)
        self.reader = library_label("tiffslide")
        """The reader and its version, as report.json's ``input.reader`` names it."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return int(self._dims[0]), int(self._dims[1])

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample factor of each level."""
        return self._downs

    def level_dimensions(self, level: int) -> tuple[int, int]:
        """(width, height) of a level."""
        w, h = self._slide.level_dimensions[level]
        return int(w), int(h)

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> NDArray[np.uint8]:
        """Read a region (size in level pixels), padded with white outside the slide."""
        if not 0 <= level < self.level_count:
            msg = f"{self.path}: level {level} out of range (0..{self.level_count - 1})"
            raise InputError(msg)
        ds = self._downs[level]
        lw, lh = self.level_dimensions(level)
        lx, ly = math.floor(x / ds), math.floor(y / ds)
        check_read_size(self.path, width, height)
        out = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
        x0, y0 = max(lx, 0), max(ly, 0)
        x1, y1 = min(lx + width, lw), min(ly + height, lh)
        if x1 <= x0 or y1 <= y0:
            return out
        try:
            with shielded():  # zarr decodes on a thread of its own: never abandon a read half-way
                arr = self._slide.read_region(
                    (round(x0 * ds), round(y0 * ds)), level, (x1 - x0, y1 - y0), as_array=True, padding=False
                )
        except Exception as e:  # corrupt tiles surface only when read
            msg = f"{self.path}: cannot read region at ({x}, {y}) level {level} ({type(e).__name__}: {e})"
            raise InputError(msg) from e
        rgb = to_rgb8(arr, where=str(self.path))
        hh, ww = min(rgb.shape[0], y1 - y0), min(rgb.shape[1], x1 - x0)
        out[y0 - ly : y0 - ly + hh, x0 - lx : x0 - lx + ww] = rgb[:hh, :ww]
        return out

    def thumbnail(self, max_side: int, *, block: int = 4096) -> NDArray[np.uint8]:
        """Overview from the smallest level still at least ``max_side``, read ``block`` px at a time."""
        return blockwise_thumbnail(self, max_side, block=block)

    def close(self) -> None:
        """Close the file."""
        self._slide.close()

    def __enter__(self) -> SlideSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_units(slide: Any, props: Any, path: Path) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(shape, strip or tile shape) of every level tiffslide reads, from the TIFF tags.

    Raises:
        InputError: the layout cannot be read from the tags.
    """
    try:
        composition = props.get("tiffslide.series-composition")
        indices = list(composition["located_series"]) if composition else [props["tiffslide.series-index"]]
        tif = slide.ts_tifffile
        pages = [level.keyframe for i in indices for level in tif.series[int(i)].levels]
        units = [(tuple(int(v) for v in p.shape), tuple(int(v) for v in p.chunks)) for p in pages]
        codes = [int(p.compression) for p in pages]
    except Exception as e:  # tifffile raises many types for corrupt files
        msg = f"{path}: cannot read the strip or tile layout ({type(e).__name__}: {e})"
        raise InputError(msg) from e
    for level, code in enumerate(codes):
        _check_codec(path, level, code)
    return units


def _check_codec(path: Path, level: int, code: int) -> None:
    """Refuse a level whose compression this installation cannot decode, naming the codec.

    JPEG 2000 (Aperio 33003/33005, 34712), LZW, deflate, WebP, zstd, JPEG XR... decode through
    imagecodecs; a codec it lacks (or one no library decodes: JBIG, SGILOG) is a one-line error
    when the slide is opened, not a failure of every tile.

    Raises:
        UnsupportedInputError: naming the codec and its TIFF compression number.
    """
    import tifffile

    try:
        tifffile.TIFF.DECOMPRESSORS[code]
    except Exception as e:  # noqa: BLE001 - KeyError, or imagecodecs missing the codec
        try:
            name = tifffile.COMPRESSION(code).name
        except ValueError:
            name = "an unknown codec"
        msg = (
            f"{path}: level {level} is compressed with {name} (TIFF compression {code}), which this "
            "installation cannot decode; refused before reading"
        )
        raise UnsupportedInputError(msg) from e
