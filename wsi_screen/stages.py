"""The screening stages as plain functions: read, tile, localise, patch, classify and aggregate.

Each stage works on one input (:class:`ScreenedInput`) or on one batch of cells, records a failure
on the input it concerns instead of raising, and adds its time to the input's timer, so a
scheduler (:class:`wsi_screen.pipeline.Screener` today, a pipelined engine later) decides only
*when* each stage runs. The last stage, report, is :func:`wsi_screen.reports.writer.write_input_reports`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from itertools import groupby
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.aggregate import summarize
from wsi_screen.blast_rates import BlastRates
from wsi_screen.config import AggregateConfig
from wsi_screen.config import TilingConfig
from wsi_screen.detectors.base import Detector
from wsi_screen.detectors.merge import once_per_seam
from wsi_screen.errors import InputError
from wsi_screen.errors import StoppedError
from wsi_screen.errors import WsiScreenError
from wsi_screen.limits import LimitsConfig
from wsi_screen.patches import Precut
from wsi_screen.patches import iter_patch_batches
from wsi_screen.regions import RegionMap
from wsi_screen.regions import score_regions
from wsi_screen.regions_config import RegionsConfig
from wsi_screen.scale_check import check_scale
from wsi_screen.scale_config import ScaleConfig
from wsi_screen.sources import ImageSource
from wsi_screen.sources import ResolvedMpp
from wsi_screen.sources import is_slide_source
from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp
from wsi_screen.tiling import iter_tiles
from wsi_screen.tiling import plan_tiles
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls
from wsi_screen.types import Failure
from wsi_screen.types import PatchBatch
from wsi_screen.types import StageTimer
from wsi_screen.types import Tile

log = logging.getLogger(__name__)

SEAM_MARGIN_PX = 2.0
"""Tile pixels past its core within which a tile may still report a cell (see :func:`detect_cells`)."""


@dataclass
class ScreenedInput:
    """Everything known about one input after screening (or its failure)."""

    path: Path
    stem: str
    source: ImageSource | None = None
    mpp: ResolvedMpp | None = None
    mpp_estimate: dict[str, Any] | None = None  # the red cells' pixel size (input.mpp_estimate)
    cells: list[Cell] = field(default_factory=list)
    calls: list[CellCalls] = field(default_factory=list)
    timer: StageTimer = field(default_factory=StageTimer)
    failure: Failure | None = None
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    unreadable: dict[str, int] = field(default_factory=dict)
    """Corrupt parts skipped: ``tiles`` (of ``tiles_total``) at detection, ``patches`` at patching."""
    regions: RegionMap | None = None
    """The countable regions (stage ``regions``); None when region selection is off for this input."""
    precut: Precut | None = None
    """Its patches, cut on the read-ahead worker (fields); None: cut batch by batch (slides)."""

    @property
    def is_slide(self) -> bool:
        """A pyramid (or a slide format): its regions decide which cells count."""
        return self.source is not None and is_slide_source(self.source)

    def counted_mask(self, cells: Sequence[Cell]) -> list[bool]:
        """Per cell: whether it feeds the differential (on a slide, when its region is counted)."""
        if self.regions is None or not self.is_slide:
            return [True] * len(cells)
        return [self.regions.is_counted(c.x, c.y) for c in cells]

    @property
    def ok(self) -> bool:
        """Whether screening succeeded."""
        return self.failure is None

    def merged_calls(self, class_names: tuple[str, ...], classifier: str) -> CellCalls:
        """All calls of this input, in cell order."""
        return CellCalls.concat(self.calls, class_names, classifier)

    def close(self) -> None:
        """Close the input's source (if open); the input keeps its cells and calls."""
        if self.source is not None:
            self.source.close()
            self.source = None


@dataclass(frozen=True)
class PatchGroup:
    """The cells of one input within a classification batch, with their patches."""

    owner: ScreenedInput
    cells: list[Cell]
    pixels: NDArray[np.uint8]
    model_input: NDArray[np.uint8] | None = None


def fail(item: ScreenedInput, stage: str, e: Exception) -> None:
    """Record ``e`` as the input's failure in ``stage`` (the first failure wins); drop its calls.

    An error that is not a :class:`WsiScreenError` is unexpected: it is logged with its traceback,
    and its message is prefixed with the input's path.
    """
    if item.failure is not None:
        return
    if not isinstance(e, WsiScreenError):
        log.error("%s: unexpected error in stage %s", item.path, stage, exc_info=e)
    msg = str(e) if isinstance(e, WsiScreenError) else f"{item.path}: {e}"
    item.failure = Failure(str(item.path), stage, type(e).__name__, msg)
    item.calls.clear()


def read(
    path: Path,
    stem: str,
    *,
    user_mpp: float | None,
    model_mpp: float,
    limits: LimitsConfig | None = None,
    scale: ScaleConfig | None = None,
    reader: str = "auto",
) -> ScreenedInput:
    """Stage ``read``: open the input and resolve its pixel size (file, else ``user_mpp``, else the model's).

    With ``scale``, the red cells check it and stand in when there is none (``scale_check``); ``reader``: ``--reader``.

    A failure is recorded on the returned input (stage as the error names it, ``read`` for an
    unexpected one); its source is then closed.
    """
    item = ScreenedInput(path=path, stem=stem)
    try:
        t = time.perf_counter()
        item.source = open_source(path, limits=limits, reader=reader)
        item.mpp = resolve_mpp(item.source, user_mpp=user_mpp, model_mpp=model_mpp)
        if scale is not None:
            item.mpp, item.mpp_estimate = check_scale(item.source, item.mpp, scale)
        if item.mpp.warning:
            item.warnings.append(item.mpp.warning)
            log.warning("%s: %s", path.name, item.mpp.warning)
        item.timer.add("read", time.perf_counter() - t)
    except Exception as e:  # noqa: BLE001 - isolate failures per input, with cause logged
        fail(item, e.stage if isinstance(e, WsiScreenError) else "read", e)
        item.close()
    return item


def select_regions(item: ScreenedInput, cfg: RegionsConfig) -> None:
    """Stage ``regions``: score the input's countable regions (slides; fields too with ``cfg.fields``).

    On a slide only cells of counted regions feed the differential, and tiles over empty regions
    are never read; on a field the regions are a quality check (a case leaves out a field whose
    counted share is too small). A failure closes the source.
    """
    if not item.ok or item.source is None or item.mpp is None:
        return
    if not cfg.enabled or not (item.is_slide or cfg.fields):
        return
    try:
        t = time.perf_counter()
        item.regions = score_regions(item.source, cfg, mpp=item.mpp.mpp)
        item.timer.add("regions", time.perf_counter() - t)
    except Exception as e:  # noqa: BLE001 - isolate failures per input, with cause logged
        fail(item, e.stage if isinstance(e, WsiScreenError) else "regions", e)
        item.close()


def seam_tiles(
    source: ImageSource,
    tiling: TilingConfig,
    *,
    mpp: float,
    target_mpp: float | None,
    unreadable: list[tuple[int, int]] | None = None,
    regions: RegionMap | None = None,
) -> Iterator[tuple[Tile, Tile, float]]:
    """Stage ``tile``: the tiles of ``source``, each with its core widened by the seam margin.

    Yields:
        ``(tile, widened, margin)``: the planned tile, the same tile whose core reaches
        :data:`SEAM_MARGIN_PX` of its pixels further (what the detector is given), and that margin
        in level-0 pixels.
    """
    skip = None if regions is None else regions.all_empty
    for tile in iter_tiles(source, tiling, mpp=mpp, target_mpp=target_mpp, unreadable=unreadable, skip=skip):
        m = SEAM_MARGIN_PX * tile.scale
        x0, y0, x1, y1 = tile.core
        widened = dataclasses.replace(
            tile, core=(math.floor(x0 - m), math.floor(y0 - m), math.ceil(x1 + m), math.ceil(y1 + m))
        )
        yield tile, widened, m


def detect_cells(
    source: ImageSource,
    detector: Detector,
    tiling: TilingConfig,
    *,
    mpp: float,
    unreadable: list[tuple[int, int]] | None = None,
    regions: RegionMap | None = None,
    stop: threading.Event | None = None,
) -> list[Cell]:
    """Run ``detector`` over all tiles of ``source``; cells are numbered 0..n-1 in tile order.

    Each tile reports the cells of its core, plus those up to :data:`SEAM_MARGIN_PX` of its
    pixels beyond it: two overlapping tiles resample and threshold a seam cell slightly
    differently, so its centre can fall a fraction of a pixel outside both cores (lost) or inside
    both (counted twice). Detections of different tiles closer than two margins are one cell
    (:func:`once_per_seam`), so every cell is counted exactly once. With ``unreadable`` given,
    tiles that cannot be read are skipped and listed there (see :func:`~wsi_screen.tiling.iter_tiles`).
    ``stop`` (set when a run ends early) ends the search at the next tile with :class:`StoppedError`.
    """
    owned: list[Cell] = []
    extra: list[Cell] = []
    radius = 0.0
    tiles = seam_tiles(
        source, tiling, mpp=mpp, target_mpp=detector.target_mpp, unreadable=unreadable, regions=regions
    )
    # a detector may take several tiles per pass (``tiles_per_batch``: YOLO on CUDA); the rest, one at a time
    batch = getattr(detector, "detect_batch", None) or (lambda ts: [detector.detect(t) for t in ts])
    n = max(1, int(getattr(detector, "tiles_per_batch", 1)))
    for chunk in iter(lambda: list(islice(tiles, n)), []):
        if stop is not None and stop.is_set():
            raise StoppedError
        for (tile, _, m), cells in zip(chunk, batch([w for _, w, _ in chunk]), strict=True):
            radius = max(radius, 2 * m)
            for c in cells:
                c = dataclasses.replace(c, tile_index=tile.index)  # whatever the (plug-in) detector set
                (owned if tile.owns(c.x, c.y) else extra).append(c)
    found = once_per_seam(owned, extra, radius=radius)
    found.sort(key=lambda c: c.tile_index)  # stable: tile order, then each tile's own order
    return [
        Cell(i, c.source_id, c.x, c.y, c.bbox, c.score, c.detector, c.tile_index) for i, c in enumerate(found)
    ]


def localise(
    item: ScreenedInput,
    detector: Detector,
    tiling: TilingConfig,
    *,
    max_unreadable_fraction: float = 0.0,
    stop: threading.Event | None = None,
) -> None:
    """Stage ``detect``: find the input's cells (:func:`detect_cells`); a failure closes its source.

    Corrupt tiles are skipped and counted (``item.unreadable``); more than
    ``max_unreadable_fraction`` of the tiles unreadable fails the input.
    """
    if not item.ok or item.source is None or item.mpp is None:
        return
    try:
        t = time.perf_counter()
        bad: list[tuple[int, int]] = []
        item.cells = detect_cells(
            item.source, detector, tiling, mpp=item.mpp.mpp, unreadable=bad, regions=item.regions, stop=stop
        )
        if bad:
            _count_unreadable(item, bad, tiling, detector, max_unreadable_fraction)
        item.timer.add("detect", time.perf_counter() - t)
        log.info("%s: %d cells detected", item.path.name, len(item.cells))
    except Exception as e:  # noqa: BLE001 - isolate failures per input, with cause logged
        fail(item, "detect", e)
        item.close()


def _count_unreadable(
    item: ScreenedInput,
    bad: list[tuple[int, int]],
    tiling: TilingConfig,
    detector: Detector,
    max_fraction: float,
) -> None:
    """Record the skipped tiles on ``item``; raise when more than ``max_fraction`` of them were."""
    assert item.source is not None  # noqa: S101 - checked by the caller
    assert item.mpp is not None  # noqa: S101 - checked by the caller
    mpp = item.mpp.mpp
    total = len(plan_tiles(item.source.dimensions, tiling, mpp=mpp, scale=_scale(detector, mpp)))
    item.unreadable.update(tiles=len(bad), tiles_total=total)
    log.warning("%s: %d of %d tiles unreadable, skipped", item.path.name, len(bad), total)
    if len(bad) > max_fraction * total:
        msg = (
            f"{item.path}: {len(bad)} of {total} tiles unreadable (first at level-0 {bad[0]}), "
            f"more than limits.max_unreadable_tile_fraction ({max_fraction:g})"
        )
        raise InputError(msg)


def _scale(detector: Detector, mpp: float) -> float:
    """Level-0 pixels per tile pixel of ``detector``'s tiles (as :func:`~wsi_screen.tiling.iter_tiles`)."""
    target = detector.target_mpp
    return 1.0 if target is None else max(target / mpp, 1e-6)


def patch(
    take: list[tuple[ScreenedInput, Cell]], *, patch_size_px: int, model_mpp: float
) -> list[PatchGroup]:
    """Stage ``patch``: cut the patches of one batch, input by input (in the batch's order).

    A region that cannot be read fails its own input (left out of the result); the rest of the
    batch is still cut. Inputs are told apart by identity: two inputs may compare equal.
    """
    groups: list[PatchGroup] = []
    for _, run in groupby(take, key=lambda pair: id(pair[0])):
        pairs = list(run)
        owner, cells = pairs[0][0], [c for _, c in pairs]
        if not (owner.ok and owner.source and owner.mpp):
            continue
        items = [(owner.source, owner.mpp.mpp, c) for c in cells]
        try:
            if owner.precut is not None:  # cut ahead on the read-ahead worker (a field)
                groups.append(PatchGroup(owner, cells, *owner.precut.take(cells)))
                continue
            batch = next(
                iter_patch_batches(
                    items, patch_size_px=patch_size_px, model_mpp=model_mpp, batch_size=len(items)
                )
            )
        except Exception as e:  # noqa: BLE001 - a region that cannot be read fails its input only
            fail(owner, "patch", e)
            continue
        groups.append(PatchGroup(owner, cells, batch.pixels))
    return groups


def classify(classifier: Any, groups: list[PatchGroup]) -> CellCalls | None:
    """Stage ``classify``: one forward pass over the patches of all ``groups``.

    Returns:
        The calls in group order, or None when the classifier failed (every input of the batch
        then fails; later batches may still succeed).
    """
    pixels = np.concatenate([g.pixels for g in groups])
    cells = tuple(c for g in groups for c in g.cells)
    ready = [g.model_input for g in groups if g.model_input is not None]
    model_input = np.concatenate(ready) if len(ready) == len(groups) else None  # all cut ahead, or none used
    try:
        calls: CellCalls = classifier.classify(PatchBatch(pixels, cells, model_input))
    except Exception as e:  # noqa: BLE001 - recorded per input
        for g in groups:
            fail(g.owner, "classify", e)
        return None
    return calls


def hand_out(groups: list[PatchGroup], calls: CellCalls, *, patch_s: float, classify_s: float) -> None:
    """Give each input its share of a batch's calls, and of its patch and classify time (by cell count)."""
    n = sum(len(g.cells) for g in groups)
    start = 0
    for g in groups:
        end = start + len(g.cells)
        g.owner.calls.append(calls.rows(start, end))
        share = len(g.cells) / n
        g.owner.timer.add("patch", patch_s * share)
        g.owner.timer.add("classify", classify_s * share)
        start = end


def aggregate(
    item: ScreenedInput, calls: CellCalls, cfg: AggregateConfig, rates: BlastRates | None
) -> dict[str, Any]:
    """Stage ``aggregate``: the input's counts, differential, blast %, flags and QC from its calls.

    Returns:
        The report figures (:func:`wsi_screen.aggregate.summarize`).
    """
    t = time.perf_counter()
    counted = calls.select(item.counted_mask(calls.cells))
    labels, probs, domain = counted.labels, counted.probs, counted.judge_domain()
    summary = summarize(
        labels, probs, calls.class_names, cfg, domain, blast_rates=rates, unfamiliar=counted.unfamiliar
    )
    item.timer.add("aggregate", time.perf_counter() - t)
    return summary
