"""Batch progress: tqdm bars with ETA on a terminal, one plain log line per input otherwise."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

# per-input lines; the CLI keeps them off the console while bars are drawn (they still reach batch.log)
log = logging.getLogger("wsi_screen.batch.progress")


class Progress:
    """Report inputs done (with ETA) and cells classified.

    Args:
        total: inputs to screen in this run (skipped ones excluded).
        bars: draw tqdm bars (the CLI passes ``sys.stderr.isatty()``); else log lines.
    """

    def __init__(self, total: int, *, bars: bool) -> None:
        self.total = total
        self.done = 0
        self.cells = 0
        self.started = time.perf_counter()
        self._bars: list[Any] = []
        if bars and total:
            from tqdm.auto import tqdm

            self._inputs = tqdm(total=total, desc="inputs", unit="input", position=0, dynamic_ncols=True)
            self._cells = tqdm(desc="cells ", unit="cell", position=1, dynamic_ncols=True)
            self._bars = [self._inputs, self._cells]

    def add_cells(self, n: int) -> None:
        """Count ``n`` more classified cells."""
        self.cells += n
        if self._bars:
            self._cells.update(n)

    def input_done(self, name: str, status: str, detail: str) -> None:
        """Count one finished input and report it."""
        self.done += 1
        if self._bars:
            self._inputs.set_postfix_str(f"{name}: {status}", refresh=False)
            self._inputs.update(1)
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        log.info(
            "[%d/%d] %s %s%s (elapsed %s, ETA %s)",
            self.done,
            self.total,
            name,
            status,
            f": {detail}" if detail else "",
            _hms(elapsed),
            _hms(eta),
        )

    def close(self) -> None:
        """Close the bars."""
        for bar in self._bars:
            bar.close()
        self._bars = []


def _hms(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))
