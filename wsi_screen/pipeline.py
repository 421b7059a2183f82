"""The staged screening pipeline: read -> tile -> detect -> patch -> classify -> aggregate -> report.

The stages are the functions of :mod:`wsi_screen.stages`; :class:`Screener` schedules them.
Memory is bounded by one tile and one batch of patches, not by slide size. Classification batches
span inputs, so a run over many small fields still fills each batch. Reading and localising run on
worker threads ahead of the model (``[pipeline]``, :mod:`wsi_screen.overlap`), so decoding the
next field overlaps classifying this one. A failure in one input is recorded with its stage and
never costs the results of the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsi_screen import stages
from wsi_screen.config import ScreenConfig
from wsi_screen.deadline import InputTimeoutError
from wsi_screen.deadline import within
from wsi_screen.detectors.base import Detector
from wsi_screen.outnames import clean_stem
from wsi_screen.overlap import read_ahead
from wsi_screen.patches import PRECUT_MAX_CELLS
from wsi_screen.patches import precut
from wsi_screen.sources import input_stem
from wsi_screen.stages import SEAM_MARGIN_PX
from wsi_screen.stages import ScreenedInput
from wsi_screen.stages import detect_cells
from wsi_screen.types import Cell
from wsi_screen.types import Failure

log = logging.getLogger(__name__)

__all__ = ["SEAM_MARGIN_PX", "ScreenedInput", "Screener", "detect_cells", "unique_stems"]


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
        self.identifiers: Any = None
        """Where reports take sample/patient identifiers from (an ``IdentifierSource``; None: sidecars only)."""
        self.reader = "auto"
        """Which library reads the inputs (``--reader``: auto, tiffslide, openslide or dicom)."""
        self._stop = threading.Event()
        """Set when a run ends early: inputs being localised on worker threads stop at their next tile."""

    def _prepare(self, path: Path, stem: str) -> ScreenedInput:
        """Stages read and detect of one input (a failure closes its source).

        Both run under the per-input time limit (``limits.input_timeout_s``), on whichever
        thread prepares the input (:func:`wsi_screen.deadline.within`).
        """
        limits = self.cfg.limits
        made = [ScreenedInput(path=path, stem=stem)]  # stands in if the limit strikes inside read
        try:
            within(limits.input_timeout_s, str(path), lambda: self._read_and_localise(made))
        except InputTimeoutError as e:  # a BaseException: no stage's handler caught it
            item = made[-1]
            item.failure = item.failure or Failure(str(path), e.stage, type(e).__name__, str(e))
            item.calls.clear()
            item.cells.clear()
            item.precut = None
            item.close()
        return made[-1]

    def _read_and_localise(self, made: list[ScreenedInput]) -> None:
        """Read, select regions, localise and cut patches ahead; the input read is appended to ``made``."""
        limits = self.cfg.limits
        first = made[0]
        made.append(
            stages.read(
                first.path,
                first.stem,
                user_mpp=self.user_mpp,
                model_mpp=self.classifier.bundle.mpp,
                limits=limits,
                scale=self.cfg.scale,
                reader=self.reader,
            )
        )
        item = made[-1]
        stages.select_regions(item, self.cfg.regions)
        stages.localise(
            item,
            self.detector,
            self.cfg.tiling,
            max_unreadable_fraction=limits.max_unreadable_tile_fraction,
            stop=self._stop,
        )
        self._precut(item)

    def _precut(self, item: ScreenedInput) -> None:
        """Cut a field's patches, resized for the network, here on the read-ahead worker.

        The model's thread then only runs the model on them. Inputs with more than
        :data:`~wsi_screen.patches.PRECUT_MAX_CELLS` cells, and any whose patches cannot be cut
        here, are cut batch by batch on the model's thread (where a failure is recorded as today).
        """
        if not (item.ok and item.source and item.mpp and 0 < len(item.cells) <= PRECUT_MAX_CELLS):
            return
        b = self.classifier.bundle
        t = time.perf_counter()
        try:
            item.precut = precut(item.source, item.cells, patch_size_px=b.patch_size_px,
                                 source_mpp=item.mpp.mpp, model_mpp=b.mpp,
                                 model_input=getattr(self.classifier, "model_input", None))  # fmt: skip
        except Exception as e:  # noqa: BLE001 - cut again on the model's thread, which records the failure
            log.debug("%s: patches not cut ahead (%s); cut on the model's thread", item.path, e)
            item.precut = None
        item.timer.add("patch", time.perf_counter() - t)

    def screen(
        self,
        paths: Sequence[Path],
        *,
        stems: Sequence[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
        close_done: bool = True,
    ) -> Iterator[ScreenedInput]:
        """Screen inputs, yielding each one as soon as all its cells are classified.

        Inputs are yielded in order; failed inputs carry a :class:`Failure`. Each input's source is
        closed once the consumer is done with it, unless ``close_done`` is False: then the
        consumer closes it (a report writer running behind the model).
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
                done.precut = None  # every patch is classified: free them before the reports
                try:
                    yield done  # the consumer writes reports while the source is still open
                finally:
                    if close_done:
                        done.close()

        pipe = self.cfg.pipeline
        self._stop.clear()
        prepared = read_ahead(
            lambda ps: self._prepare(Path(ps[0]), ps[1]),
            zip(paths, stems, strict=True),
            workers=pipe.resolved_workers(),  # the time limit holds on worker threads too
            depth=pipe.read_ahead,
            discard=ScreenedInput.close,
            stop=self._stop,
            nice=pipe.worker_nice,
        )
        try:
            for item in prepared:
                pending.append(item)
                remaining[id(item)] = 0 if not item.ok else len(item.cells)
                if item.ok:
                    queue.extend((item, c) for c in item.cells)
                # inputs waiting behind a part-filled batch hold open sources: bound how many
                yield from run_batches(flush=len(pending) > self.max_pending)
            yield from run_batches(flush=True)
        finally:  # an interrupted run (or a consumer that stops early) leaves no file open
            prepared.close()  # inputs read ahead stop at their next tile and are closed
            for it in pending:
                it.close()

    def _classify(self, take: list[tuple[ScreenedInput, Cell]]) -> None:
        """Stages patch and classify of one batch; a failure costs only the inputs it concerns.

        Patches are cut input by input, so a region that cannot be read fails its own input and the
        rest of the batch is still classified; a classifier error fails the inputs of this batch.
        """
        b = self.classifier.bundle
        t = time.perf_counter()
        groups = stages.patch(take, patch_size_px=b.patch_size_px, model_mpp=b.mpp)
        if not groups:
            return
        t_patch = time.perf_counter() - t
        t = time.perf_counter()
        calls = stages.classify(self.classifier, groups)
        if calls is None:
            return
        stages.hand_out(groups, calls, patch_s=t_patch, classify_s=time.perf_counter() - t)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output folder names: the input stem made safe (:func:`~wsi_screen.outnames.clean_stem`), de-duplicated with ``-2``, ``-3``... when stems clash.

    A generated name never takes another input's own stem (``a.png``, ``a.tif``, ``a-2.png`` give
    ``a``, ``a-3``, ``a-2``).

    Example:
        >>> unique_stems([Path("a.png"), Path("a.tif"), Path("a-2.png")])
        ['a', 'a-3', 'a-2']
    """
    bases = [clean_stem(input_stem(Path(p))) for p in paths]
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
