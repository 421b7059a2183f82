"""The staged screening pipeline: read -> tile -> detect -> patch -> classify -> aggregate -> report.

Stages are generators; memory is bounded by one tile and one batch of patches, not by slide size.
Classification batches span inputs, so a run over many small fields still fills each batch.
A failure in one input is recorded with its stage and never costs the results of the others.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from wsi_screen.config import ScreenConfig
from wsi_screen.config import TilingConfig
from wsi_screen.detectors.base import Detector
from wsi_screen.detectors.merge import once_per_seam
from wsi_screen.errors import WsiScreenError
from wsi_screen.patches import iter_patch_batches
from wsi_screen.sources import ImageSource
from wsi_screen.sources import ResolvedMpp
from wsi_screen.sources import input_stem
from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp
from wsi_screen.tiling import iter_tiles
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls
from wsi_screen.types import Failure
from wsi_screen.types import PatchBatch
from wsi_screen.types import StageTimer

log = logging.getLogger(__name__)


SEAM_MARGIN_PX = 2.0
"""Tile pixels past its core within which a tile may still report a cell (see :func:`detect_cells`)."""


def detect_cells(source: ImageSource, detector: Detector, tiling: TilingConfig, *, mpp: float) -> list[Cell]:
    """Run ``detector`` over all tiles of ``source``; cells are numbered 0..n-1 in tile order.

    Each tile reports the cells of its core, plus those up to :data:`SEAM_MARGIN_PX` of its
    pixels beyond it: two overlapping tiles resample and threshold a seam cell slightly
    differently, so its centre can fall a fraction of a pixel outside both cores (lost) or inside
    both (counted twice). Detections of different tiles closer than two margins are one cell
    (:func:`once_per_seam`), so every cell is counted exactly once.
    """
    owned: list[Cell] = []
    extra: list[Cell] = []
    radius = 0.0
    for tile in iter_tiles(source, tiling, mpp=mpp, target_mpp=detector.target_mpp):
        m = SEAM_MARGIN_PX * tile.scale
        radius = max(radius, 2 * m)
        x0, y0, x1, y1 = tile.core
        widened = dataclasses.replace(
            tile, core=(math.floor(x0 - m), math.floor(y0 - m), math.ceil(x1 + m), math.ceil(y1 + m))
        )
        for c in detector.detect(widened):
            c = dataclasses.replace(c, tile_index=tile.index)  # whatever the (plug-in) detector set
            (owned if tile.owns(c.x, c.y) else extra).append(c)
    found = once_per_seam(owned, extra, radius=radius)
    found.sort(key=lambda c: c.tile_index)  # stable: tile order, then each tile's own order
    return [
        Cell(i, c.source_id, c.x, c.y, c.bbox, c.score, c.detector, c.tile_index) for i, c in enumerate(found)
    ]


@dataclass
class ScreenedInput:
    """Everything known about one input after screening (or its failure)."""

    path: Path
    stem: str
    source: ImageSource | None = None
    mpp: ResolvedMpp | None = None
    cells: list[Cell] = field(default_factory=list)
    calls: list[CellCalls] = field(default_factory=list)
    timer: StageTimer = field(default_factory=StageTimer)
    failure: Failure | None = None
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        """Whether screening succeeded."""
        return self.failure is None

    def merged_calls(self, class_names: tuple[str, ...], classifier: str) -> CellCalls:
        """All calls of this input, in cell order."""
        return CellCalls.concat(self.calls, class_names, classifier)


class Screener:
    """Wire a detector and a classifier into the staged pipeline.

    Args:
        cfg: the resolved run configuration.
        detector: a :class:`Detector`.
        classifier: an object with ``class_names``, ``patch_size_px``, ``bundle.mpp`` and
            ``classify(PatchBatch) -> CellCalls`` (:class:`TimmClassifier`).
        user_mpp: pixel size given on the command line, used when a file has none.
    """

    def __init__(
        self, cfg: ScreenConfig, detector: Detector, classifier: Any, *, user_mpp: float | None = None
    ) -> None:
        self.cfg = cfg
        self.detector = detector
        self.classifier = classifier
        self.user_mpp = user_mpp
        self.max_pending = 8
        """Most inputs kept open while waiting for a batch to fill; more flush a part-filled batch."""

    def _prepare(self, path: Path, stem: str) -> ScreenedInput:
        item = ScreenedInput(path=path, stem=stem)
        stage = "read"
        try:
            t = time.perf_counter()
            item.source = open_source(path)
            item.mpp = resolve_mpp(item.source, user_mpp=self.user_mpp, model_mpp=self.classifier.bundle.mpp)
            if item.mpp.warning:
                item.warnings.append(item.mpp.warning)
                log.warning("%s: %s", path.name, item.mpp.warning)
            item.timer.add("read", time.perf_counter() - t)
            stage = "detect"
            t = time.perf_counter()
            item.cells = detect_cells(item.source, self.detector, self.cfg.tiling, mpp=item.mpp.mpp)
            item.timer.add("detect", time.perf_counter() - t)
            log.info("%s: %d cells detected", path.name, len(item.cells))
        except WsiScreenError as e:
            item.failure = Failure(str(path), e.stage if stage == "read" else stage, type(e).__name__, str(e))
        except Exception as e:  # noqa: BLE001 - isolate unexpected failures per input, with cause logged
            log.exception("%s: unexpected error in stage %s", path, stage)
            item.failure = Failure(str(path), stage, type(e).__name__, f"{path}: {e}")
        if item.failure and item.source is not None:
            item.source.close()
            item.source = None
        return item

    def screen(
        self,
        paths: Sequence[Path],
        *,
        stems: Sequence[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[ScreenedInput]:
        """Screen inputs, yielding each one as soon as all its cells are classified.

        Inputs are yielded in order; failed inputs carry a :class:`Failure`.
        """
        stems = list(stems) if stems is not None else unique_stems(paths)
        pending: deque[ScreenedInput] = deque()
        queue: deque[tuple[ScreenedInput, Cell]] = deque()
        remaining: dict[int, int] = {}
        bs = self.cfg.classify.batch_size

        def run_batches(flush: bool) -> Iterator[ScreenedInput]:
            while len(queue) >= bs or (flush and queue):
                take = [queue.popleft() for _ in range(min(bs, len(queue)))]
                self._classify(take)
                if on_batch:
                    on_batch(len(take))
                for it, _ in take:
                    remaining[id(it)] -= 1
            while pending and remaining[id(pending[0])] == 0:
                done = pending.popleft()
                try:
                    yield done  # the consumer writes reports while the source is still open
                finally:
                    _close(done)

        try:
            for path, stem in zip(paths, stems, strict=True):
                item = self._prepare(Path(path), stem)
                pending.append(item)
                remaining[id(item)] = 0 if not item.ok else len(item.cells)
                if item.ok:
                    queue.extend((item, c) for c in item.cells)
                # inputs waiting behind a part-filled batch hold open sources: bound how many
                yield from run_batches(flush=len(pending) > self.max_pending)
            yield from run_batches(flush=True)
        finally:  # an interrupted run (or a consumer that stops early) leaves no file open
            for it in pending:
                _close(it)

    def _classify(self, take: list[tuple[ScreenedInput, Cell]]) -> None:
        """Crop and classify one batch; a failure costs only the inputs it concerns.

        Patches are cut input by input, so a region that cannot be read fails its own input and the
        rest of the batch is still classified; a classifier error fails the inputs of this batch.
        """
        b = self.classifier.bundle
        t = time.perf_counter()
        groups: list[tuple[ScreenedInput, list[Cell], Any]] = []
        for _, run in groupby(take, key=lambda pair: id(pair[0])):  # identity: inputs may be equal
            pairs = list(run)
            owner, cells = pairs[0][0], [c for _, c in pairs]
            if not (owner.ok and owner.source and owner.mpp):
                continue
            items = [(owner.source, owner.mpp.mpp, c) for c in cells]
            try:
                batch = next(
                    iter_patch_batches(
                        items, patch_size_px=b.patch_size_px, model_mpp=b.mpp, batch_size=len(items)
                    )
                )
            except Exception as e:  # noqa: BLE001 - a region that cannot be read fails its input only
                self._fail(owner, "patch", e)
                continue
            groups.append((owner, cells, batch.pixels))
        if not groups:
            return
        t_patch = time.perf_counter() - t
        t = time.perf_counter()
        pixels = np.concatenate([px for _, _, px in groups])
        cells_all = tuple(c for _, cells, _ in groups for c in cells)
        try:
            calls = self.classifier.classify(PatchBatch(pixels, cells_all))
        except Exception as e:  # noqa: BLE001 - recorded per input; later batches may still succeed
            for owner, _, _ in groups:
                self._fail(owner, "classify", e)
            return
        t_cls = time.perf_counter() - t
        n = len(cells_all)
        start = 0
        for owner, cells, _ in groups:
            end = start + len(cells)
            owner.calls.append(
                CellCalls(calls.cells[start:end], calls.probs[start:end], calls.class_names, calls.classifier)
            )
            share = len(cells) / n
            owner.timer.add("patch", t_patch * share)
            owner.timer.add("classify", t_cls * share)
            start = end

    @staticmethod
    def _fail(it: ScreenedInput, stage: str, e: Exception) -> None:
        if it.failure is None:
            if not isinstance(e, WsiScreenError):
                log.error("%s: unexpected error in stage %s", it.path, stage, exc_info=e)
            msg = str(e) if isinstance(e, WsiScreenError) else f"{it.path}: {e}"
            it.failure = Failure(str(it.path), stage, type(e).__name__, msg)
            it.calls.clear()


def _close(it: ScreenedInput) -> None:
    if it.source is not None:
        it.source.close()
        it.source = None


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output folder names: the input stem, de-duplicated with ``-2``, ``-3``... when stems clash.

    A generated name never takes another input's own stem (``a.png``, ``a.tif``, ``a-2.png`` give
    ``a``, ``a-3``, ``a-2``).

    Example:
        >>> unique_stems([Path("a.png"), Path("a.tif"), Path("a-2.png")])
        ['a', 'a-3', 'a-2']
    """
    bases = [input_stem(Path(p)) for p in paths]
    own = set(bases)
    taken: set[str] = set()
    out: list[str] = []
    for base in bases:
        stem, n = base, 1
        while stem in taken or (n > 1 and stem in own):
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem)
        out.append(stem)
    return out
