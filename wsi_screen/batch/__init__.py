"""Overnight batch screening of folders: resumable, fault-isolated, local or on Ray.

Example:
    >>> from wsi_screen.batch import BatchOptions, run_batch
    >>> result = run_batch([Path("slides")], Path("out"), options=BatchOptions(),
    ...                    screener_kwargs={"model": "default"})  # doctest: +SKIP
"""

from __future__ import annotations

from wsi_screen.batch.core import run_batch
from wsi_screen.batch.discover import BatchInput
from wsi_screen.batch.discover import discover_inputs
from wsi_screen.batch.options import BatchOptions
from wsi_screen.batch.options import BatchResult

__all__ = ["BatchInput", "BatchOptions", "BatchResult", "discover_inputs", "run_batch"]
