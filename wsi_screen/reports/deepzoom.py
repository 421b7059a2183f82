"""Deep-zoom (DZI) tiles of a field or slide, written beside report.html for the page's viewer.

The page shows them with OpenSeadragon (vendored, BSD-3-Clause: ``reports/vendor/openseadragon``),
so a reviewer can zoom from the whole slide down to native resolution offline, from ``file://``.
Layout (the Deep Zoom format of Microsoft's Seadragon, as OpenSeadragon reads it)::

    OUT/<stem>/viewer/image.dzi               descriptor (for other viewers; the page inlines it)
    OUT/<stem>/viewer/image_files/<L>/<c>_<r>.jpeg
    OUT/<stem>/viewer/viewer.json             what report.html needs (re-rendering after review)
    OUT/<stem>/viewer/openseadragon.min.js    the viewer, with its licence beside it

Level ``L`` halves level ``L + 1``; the top level is the image at level-0 resolution, or smaller
when ``max_side`` caps it (``scale`` then records DZI pixels per level-0 pixel, for the marks).
Each tile is rendered from the source's best pyramid level for its scale, so a slide's full image is
never in memory; the levels small enough to fit ``_BASE_MAX`` are halved from one in-memory base.

Fields get the same format in larger tiles (:data:`FIELD_MAX`, :data:`FIELD_TILE`): one code
path, every view of a field is sharp at the zoom the reviewer picks, and a 2452 x 2056 field
costs 24 files instead of 137 (creating files is a large part of the viewer's cost on some
filesystems), each tile small enough to load at once when the reviewer zooms in. The folder is replaced as a whole: tiles
are written into a temporary folder that is renamed into place.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import shutil
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import WsiScreenError
from wsi_screen.jpeg import encode_jpeg
from wsi_screen.sources.base import ImageSource
from wsi_screen.textfiles import read_json_object

log = logging.getLogger(__name__)

VIEWER_DIR = "viewer"
VIEWER_JSON = "viewer.json"
MAX_VIEWER_JSON_BYTES = 64 << 10  # the largest viewer.json read back (it takes a few hundred bytes)
OSD_SCRIPT = "openseadragon.min.js"
OSD_LICENCE = "LICENSE-openseadragon.txt"
OSD_VERSION = "6.1.1"
DZI_NAME = "image"
DZI_XMLNS = "http://schemas.microsoft.com/deepzoom/2008"
_BASE_MAX = 2048  # levels whose longer side is at most this are halved from one in-memory image
_CHUNK = 1024  # output pixels rendered per source read when building the base
FIELD_MAX = 4096
"""Images without a pyramid and no side longer than this (microscope fields) are rendered from one
in-memory image in tiles of :data:`FIELD_TILE`; slides tile by tile at :data:`DEFAULT_TILE`."""
FIELD_TILE = 1022  # + 2 x 1 overlap = 1024
DEFAULT_TILE = 254  # + 2 x 1 overlap = 256, the DZI default


@dataclass(frozen=True)
class DeepZoomImage:
    """A written DZI pyramid, as the page needs it.

    Attributes:
        url: the tiles folder relative to report.html, ending in ``/``.
        width: top-level width in pixels.
        height: top-level height in pixels.
        tile_size: tile side without overlap.
        overlap: pixels each tile repeats of its neighbours.
        format: tile file extension.
        scale: top-level pixels per level-0 pixel (1.0 unless capped).
        levels: number of levels (0 .. levels - 1).
        tiles: number of tile files.
    """

    url: str
    width: int
    height: int
    tile_size: int
    overlap: int
    format: str
    scale: float
    levels: int
    tiles: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for viewer.json and the page."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeepZoomImage:
        """Inverse of :meth:`to_dict`."""
        return cls(
            url=str(data["url"]),
            width=int(data["width"]),
            height=int(data["height"]),
            tile_size=int(data["tile_size"]),
            overlap=int(data["overlap"]),
            format=str(data["format"]),
            scale=float(data["scale"]),
            levels=int(data["levels"]),
            tiles=int(data["tiles"]),
        )

    def tile_source(self) -> dict[str, Any]:
        """The inline DZI description OpenSeadragon accepts as ``tileSources`` (no XHR from file://)."""
        return {
            "Image": {
                "xmlns": DZI_XMLNS,
                "Url": self.url,
                "Format": self.format,
                "Overlap": str(self.overlap),
                "TileSize": str(self.tile_size),
                "Size": {"Width": str(self.width), "Height": str(self.height)},
            }
        }


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(width, height) of every DZI level, level 0 (1 x 1) first.

    Example:
        >>> level_sizes(5, 3)
        [(1, 1), (2, 1), (3, 2), (5, 3)]
    """
    top = math.ceil(math.log2(max(width, height, 1)))
    return [
        (math.ceil(width / 2 ** (top - lv)), math.ceil(height / 2 ** (top - lv))) for lv in range(top + 1)
    ]


def tile_boxes(
    size: tuple[int, int], tile_size: int, overlap: int
) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """``(col, row, (x0, y0, x1, y1))`` of each tile of a level: the DZI grid plus its overlap."""
    w, h = size
    out = []
    for col in range(math.ceil(w / tile_size)):
        for row in range(math.ceil(h / tile_size)):
            x0, y0 = max(0, col * tile_size - overlap), max(0, row * tile_size - overlap)
            x1, y1 = min(w, (col + 1) * tile_size + overlap), min(h, (row + 1) * tile_size + overlap)
            out.append((col, row, (x0, y0, x1, y1)))
    return out


EMPTY_GLASS_COARSENING = 16.0
"""Empty glass (every region it touches ``empty``) is drawn from a pyramid level up to this much
coarser than the view: there is nothing on it to see, and reading it finely is most of a large
slide's viewer cost."""


def render_region(
    source: ImageSource,
    box: tuple[float, float, float, float],
    out_size: tuple[int, int],
    *,
    coarsening: float = 1.0,
) -> NDArray[np.uint8]:
    """Level-0 ``box`` (x0, y0, x1, y1) resampled to ``out_size`` (w, h), read at the best pyramid level.

    The level chosen is the coarsest one still at least as fine as the output (``coarsening``
    times coarser for empty glass), so detail is never invented and a slide is never read at full
    resolution for a small view. Shrinking averages (area) by the whole factor first, then the
    exact sub-pixel placement is bilinear.
    """
    x0, y0, x1, y1 = box
    ow, oh = out_size
    per_x, per_y = (x1 - x0) / ow, (y1 - y0) / oh
    downs = source.level_downsamples
    fine_enough = [i for i, d in enumerate(downs) if d <= min(per_x, per_y) * coarsening * 1.0001]
    level = max(fine_enough, key=lambda i: downs[i]) if fine_enough else 0
    ds = downs[level]
    ix, iy = math.floor(x0), math.floor(y0)
    rw, rh = max(1, math.ceil((x1 - ix) / ds) + 1), max(1, math.ceil((y1 - iy) / ds) + 1)
    region = source.read_region(ix, iy, rw, rh, level=level)
    # output pixel centre u maps to region coordinate a * u + b (pixel centres at integers)
    ax, ay = per_x / ds, per_y / ds
    bx, by = (x0 - ix) / ds + 0.5 * ax - 0.5, (y0 - iy) / ds + 0.5 * ay - 0.5
    if ax == ay == 1.0 and bx == by == 0.0 and region.shape[1] >= ow and region.shape[0] >= oh:
        return region[:oh, :ow]  # level-0 pixels 1:1 (a field's top level): nothing to resample
    k = max(1, math.floor(min(ax, ay)))
    if k > 1:  # average k x k blocks first: bilinear alone would alias when shrinking
        ph, pw = -rh % k, -rw % k
        padded = cv2.copyMakeBorder(region, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        region = np.asarray(
            cv2.resize(padded, ((rw + pw) // k, (rh + ph) // k), interpolation=cv2.INTER_AREA), np.uint8
        )
        ax, ay, bx, by = ax / k, ay / k, (bx - (k - 1) / 2) / k, (by - (k - 1) / 2) / k
    m = np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(region, m, (ow, oh), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


UNREADABLE_GREY = 128  # what the viewer shows where the source cannot be read (corrupt tiles)


def render_readable(
    source: ImageSource,
    box: tuple[float, float, float, float],
    out_size: tuple[int, int],
    *,
    coarsening: float = 1.0,
) -> NDArray[np.uint8]:
    """:func:`render_region`, with the parts a corrupt source cannot give shown grey.

    A failed read is split in four and retried down to 32 output pixels, so one corrupt tile of a
    slide greys out about its own area in the viewer, not the whole view around it.
    """
    try:
        return render_region(source, box, out_size, coarsening=coarsening)
    except WsiScreenError:
        ow, oh = out_size
        if max(ow, oh) <= 32:
            return np.full((oh, ow, 3), UNREADABLE_GREY, np.uint8)
    x0, y0, x1, y1 = box
    out = np.empty((oh, ow, 3), np.uint8)
    hw, hh = max(1, ow // 2), max(1, oh // 2)
    for px0, px1 in ((0, hw), (hw, ow)):
        for py0, py1 in ((0, hh), (hh, oh)):
            if px1 <= px0 or py1 <= py0:
                continue
            sub = (x0 + (x1 - x0) * px0 / ow, y0 + (y1 - y0) * py0 / oh,
                   x0 + (x1 - x0) * px1 / ow, y0 + (y1 - y0) * py1 / oh)  # fmt: skip
            out[py0:py1, px0:px1] = render_readable(
                source, sub, (px1 - px0, py1 - py0), coarsening=coarsening
            )
    return out


def _dzi_xml(img: DeepZoomImage) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="{DZI_XMLNS}" Format="{img.format}" Overlap="{img.overlap}" TileSize="{img.tile_size}">'
        f'<Size Width="{img.width}" Height="{img.height}"/></Image>\n'
    )


def _copy_viewer_script(folder: Path) -> None:
    vendor = resources.files("wsi_screen") / "reports" / "vendor" / "openseadragon"
    (folder / OSD_SCRIPT).write_bytes((vendor / OSD_SCRIPT).read_bytes())
    (folder / OSD_LICENCE).write_bytes((vendor / "LICENSE.txt").read_bytes())


def write_deep_zoom(
    source: ImageSource,
    report_dir: Path,
    *,
    tile_size: int | None = None,
    overlap: int = 1,
    quality: int = 85,
    max_side: int | None = None,
    empty: Callable[[tuple[float, float, float, float]], bool] | None = None,
) -> DeepZoomImage:
    """Write ``report_dir/viewer/``: the DZI pyramid of ``source``, its description and the viewer script.

    Args:
        source: the field or slide (level-0 coordinates, as the cells).
        report_dir: OUT/<stem>/.
        tile_size: tile side; None: :data:`FIELD_TILE` for a field (one level, within
            :data:`FIELD_MAX`), else :data:`DEFAULT_TILE`.
        overlap: pixels repeated on each inner tile edge.
        quality: JPEG quality of the tiles.
        max_side: cap on the top level's longer side (None: level-0 resolution).
        empty: whether a level-0 box is empty glass (``RegionMap.all_empty``); such tiles are
            drawn from a coarser level (:data:`EMPTY_GLASS_COARSENING`).

    Returns:
        The written pyramid.

    Raises:
        WsiScreenError: a tile cannot be encoded or the folder cannot be written (the message names it).
    """
    report_dir = Path(report_dir)
    w0, h0 = source.dimensions
    scale = 1.0 if not max_side or max(w0, h0) <= max_side else max_side / max(w0, h0)
    width, height = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    sizes = level_sizes(width, height)
    field = len(source.level_downsamples) == 1 and max(width, height) <= FIELD_MAX  # no pyramid
    tile_size = tile_size or (FIELD_TILE if field else DEFAULT_TILE)
    base_max = max(width, height) if field else _BASE_MAX  # a field: every level from memory
    final = report_dir / VIEWER_DIR
    tmp = report_dir / f".{VIEWER_DIR}.{secrets.token_hex(4)}.tmp"
    tiles_dir = tmp / f"{DZI_NAME}_files"
    n_tiles = 0
    try:
        tmp.mkdir(parents=True)
        base: NDArray[np.uint8] | None = None
        for lv in range(len(sizes) - 1, -1, -1):
            lw, lh = sizes[lv]
            per_px = (w0 / width) * (2 ** (len(sizes) - 1 - lv))  # level-0 pixels per level pixel
            if base is None and max(lw, lh) <= base_max:
                base = _render_base(source, (lw, lh), per_px)
            elif base is not None:
                base = np.asarray(cv2.resize(base, (lw, lh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            (tiles_dir / str(lv)).mkdir(parents=True)
            for col, row, (x0, y0, x1, y1) in tile_boxes((lw, lh), tile_size, overlap):
                if base is not None:
                    img = base[y0:y1, x0:x1]
                else:
                    box = (x0 * per_px, y0 * per_px, x1 * per_px, y1 * per_px)
                    coarse = EMPTY_GLASS_COARSENING if empty is not None and empty(box) else 1.0
                    img = render_readable(source, box, (x1 - x0, y1 - y0), coarsening=coarse)
                (tiles_dir / str(lv) / f"{col}_{row}.jpeg").write_bytes(
                    encode_jpeg(img, quality, what="a viewer tile")
                )
                n_tiles += 1
        dz = DeepZoomImage(
            url=f"{VIEWER_DIR}/{DZI_NAME}_files/",
            width=width,
            height=height,
            tile_size=tile_size,
            overlap=overlap,
            format="jpeg",
            scale=width / w0,
            levels=len(sizes),
            tiles=n_tiles,
        )
        (tmp / f"{DZI_NAME}.dzi").write_text(_dzi_xml(dz), encoding="utf-8")
        (tmp / VIEWER_JSON).write_text(json.dumps(dz.to_dict(), indent=1) + "\n", encoding="utf-8")
        _copy_viewer_script(tmp)
        _swap_into_place(tmp, final)
    except OSError as e:
        msg = f"{final}: cannot write the viewer tiles: {e}"
        raise WsiScreenError(msg) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug(
        "viewer: %d tiles, %d levels, %dx%d (scale %.4g) in %s",
        n_tiles,
        len(sizes),
        width,
        height,
        scale,
        final,
    )
    return dz


def _render_base(source: ImageSource, size: tuple[int, int], per_px: float) -> NDArray[np.uint8]:
    """A whole level of ``size`` rendered piece by piece (one source read per ``_CHUNK`` square)."""
    lw, lh = size
    base = np.empty((lh, lw, 3), np.uint8)
    for y in range(0, lh, _CHUNK):
        for x in range(0, lw, _CHUNK):
            cw, ch = min(_CHUNK, lw - x), min(_CHUNK, lh - y)
            box = (x * per_px, y * per_px, (x + cw) * per_px, (y + ch) * per_px)
            base[y : y + ch, x : x + cw] = render_readable(source, box, (cw, ch))
    return base


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the complete folder ``tmp`` (the old folder is removed after the rename)."""
    old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
    if final.exists():
        final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        if old.exists() and not final.exists():
            old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_deep_zoom(report_dir: Path) -> DeepZoomImage | None:
    """The pyramid written beside a report, or None when there is none (the page then has no viewer).

    Raises:
        WsiScreenError: viewer.json exists but cannot be read (the message names it).
    """
    path = Path(report_dir) / VIEWER_DIR / VIEWER_JSON
    if not path.exists():
        return None
    try:  # read bounded: size and nesting capped, a one-line error
        return DeepZoomImage.from_dict(
            read_json_object(path, error=WsiScreenError, max_bytes=MAX_VIEWER_JSON_BYTES)
        )
    except (ValueError, KeyError, TypeError, WsiScreenError) as e:
        msg = f"{path}: not a valid viewer description: {str(e).removeprefix(f'{path}: ')}"
        raise WsiScreenError(msg) from e
