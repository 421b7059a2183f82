"""The staged screening pipeline: read -> tile -> detect -> patch -> classify -> aggregate -> report.

Stages are generators; memory is bounded by one tile and one batch of patches, not by slide size.
Classification batches span inputs, so a run over many small fields still fills each batch.
A failure in one input is recorded with its stage and never costs the results of the others.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from wsi_screen.config import ScreenConfig
from wsi_screen.config import TilingConfig
from wsi_screen.detectors.base import Detector
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
from wsi_screen.types import StageTimer

log = logging.getLogger(__name__)


def detect_cells(source: ImageSource, detector: Detector, tiling: TilingConfig, *, mpp: float) -> list[Cell]:
    """Run ``detector`` over all tiles of ``source``; cells are numbered 0..n-1 in tile order.

    Tile ownership guarantees each cell is reported by one tile only.
    """
    cells: list[Cell] = []
    for tile in iter_tiles(source, tiling, mpp=mpp, target_mpp=detector.target_mpp):
        for c in detector.detect(tile):
            cells.append(Cell(len(cells), c.source_id, c.x, c.y, c.bbox, c.score, c.detector, c.tile_index))
    return cells


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
                    if done.source is not None:
                        done.source.close()
                        done.source = None

        for path, stem in zip(paths, stems, strict=True):
            item = self._prepare(Path(path), stem)
            pending.append(item)
            remaining[id(item)] = 0 if not item.ok else len(item.cells)
            if item.ok:
                queue.extend((item, c) for c in item.cells)
            yield from run_batches(flush=False)
        yield from run_batches(flush=True)

    def _classify(self, take: list[tuple[ScreenedInput, Cell]]) -> None:
        items = [(it.source, it.mpp.mpp, c) for it, c in take if it.ok and it.source and it.mpp]
        owners = [it for it, _ in take if it.ok and it.source and it.mpp]
        if not items:
            return
        b = self.classifier.bundle
        t = time.perf_counter()
        try:
            batch = next(
                iter_patch_batches(
                    items, patch_size_px=b.patch_size_px, model_mpp=b.mpp, batch_size=len(items)
                )
            )
        except WsiScreenError as e:  # a slide region that cannot be read fails its input only
            self._fail_each(owners, "patch", e)
            return
        t_patch = time.perf_counter() - t
        t = time.perf_counter()
        calls = self.classifier.classify(batch)
        t_cls = time.perf_counter() - t
        n = len(owners)
        start = 0
        while start < n:
            owner = owners[start]
            end = start
            while end < n and owners[end] is owner:
                end += 1
            owner.calls.append(
                CellCalls(calls.cells[start:end], calls.probs[start:end], calls.class_names, calls.classifier)
            )
            share = (end - start) / n
            owner.timer.add("patch", t_patch * share)
            owner.timer.add("classify", t_cls * share)
            start = end

    @staticmethod
    def _fail_each(owners: list[ScreenedInput], stage: str, e: Exception) -> None:
        for it in {id(o): o for o in owners}.values():
            if it.failure is None:
                it.failure = Failure(str(it.path), stage, type(e).__name__, str(e))


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output folder names: the input stem, de-duplicated with ``-2``, ``-3``... when stems clash."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = input_stem(Path(p))
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out
