"""What a batch is asked to do and what it did: :class:`BatchOptions` and :class:`BatchResult`.

Its own module, below everything else in ``wsi_screen.batch``: the planner, the screening loop and
the summary all read the options, and none of them needs the batch driver (``core``) for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch (the ``wsi-screen batch`` options)."""

    recursive: bool = False
    patterns: tuple[str, ...] = ("*",)  # file-name globs; a file matching any one is an input
    resume: bool = True
    fail_fast: bool = False
    engine: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    progress_bars: bool = False
    rescreen: bool = False  # screen again over reviewed reports, archiving them (else the batch stops)


@dataclass
class BatchResult:
    """What a batch did: summary rows in input order and counts."""

    rows: list[dict[str, Any]]
    n_screened: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_not_run: int = 0
    n_not_inputs: int = 0  # listed as skipped: sidecars, folders without fields
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every input was screened (now or in an earlier run)."""
        return self.n_failed == 0 and self.n_not_run == 0
