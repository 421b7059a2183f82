"""The ``[pipeline]`` section of the run configuration: how the stages overlap on threads.

These settings change how fast a run goes, never what a report says: they are runtime-only and
stay out of batch run keys (:data:`wsi_screen.ledger.RUNTIME_ONLY_KEYS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wsi_screen.config_ranges import check_ranges
from wsi_screen.errors import ConfigError


@dataclass(frozen=True)
class PipelineConfig:
    """Overlap of reading, localising, classifying and report writing (:mod:`wsi_screen.overlap`).

    Attributes:
        workers: threads that read and localise inputs ahead of the model; -1 sizes them to the
            cores (one per core beyond the first, at least one, at most four), 0 reads on the
            main thread, one input after another. The per-input time limit
            (``limits.input_timeout_s``) holds on these threads too (:mod:`wsi_screen.deadline`).
        read_ahead: inputs read and localised ahead of the one being classified (the decoded
            images held at once beyond it).
        write_behind: inputs whose reports are written on a writer thread while the model goes on;
            0 writes each input's reports before the next is classified.
        worker_nice: how much lower the CPU priority of the read-ahead and writer threads is than
            the model's (Linux ``nice`` increment, per thread; 0: the same). They then run in the
            model's gaps instead of slowing its threads down: on 2 cores the marginal time per
            field went from 0.29-0.32 to 0.28 s (``benchmarks/field_ratio.py --worker-nice 0`` against
            the default; docs/benchmarks.md).
    """

    workers: int = -1
    read_ahead: int = 2
    write_behind: int = 2
    worker_nice: int = 10

    def __post_init__(self) -> None:
        if not -1 <= self.workers <= 64:
            msg = f"pipeline.workers must be -1 (one per core beyond the first), 0 (none) or up to 64, got {self.workers}"
            raise ConfigError(msg)
        for key in ("read_ahead", "write_behind"):
            value = getattr(self, key)
            if not 0 <= value <= 64:
                msg = f"pipeline.{key} must be 0-64, got {value}"
                raise ConfigError(msg)
        if not 0 <= self.worker_nice <= 19:
            msg = f"pipeline.worker_nice must be 0-19, got {self.worker_nice}"
            raise ConfigError(msg)
        check_ranges("pipeline", self)

    def resolved_workers(self) -> int:
        """The number of read-ahead threads to start."""
        if self.workers >= 0:
            return self.workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(4, cores - 1))
