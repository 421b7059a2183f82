"""The local engine: one screener in this process; classification batches span inputs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsi_screen.batch.discover import BatchInput
from wsi_screen.runner import InputOutcome

log = logging.getLogger(__name__)


def screen_local(
    todo: Sequence[BatchInput],
    out: Path,
    *,
    screener_kwargs: dict[str, Any],
    on_cells: Callable[[int], None],
    stop: Callable[[], bool],
    engine_info: dict[str, Any],
    run_keys: Sequence[str] | None = None,
) -> Iterator[tuple[int, InputOutcome]]:
    """Screen ``todo`` into ``out/<stem>/``, yielding ``(index into todo, outcome)`` in order.

    Args:
        todo: the inputs to screen.
        out: the batch output folder.
        screener_kwargs: keyword arguments of :func:`wsi_screen.runner.build_screener`.
        on_cells: called with the number of cells of each classification batch.
        stop: polled after each input; when it returns True no further input is started.
        engine_info: filled with the device and worker count for run_metadata.json.
        run_keys: the batch run key of each input, written into its report.json (``batch.run_key``).

    Raises:
        WsiScreenError: the screener cannot be built (config, model or detector).
    """
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    if not todo:
        return
    screener, info = build_screener(**screener_kwargs)
    engine_info.update(
        devices=[str(getattr(screener.classifier, "device", "unknown"))],
        workers=1,
        detector=info["detector"],
    )
    outcomes = screen_to_folder(
        screener,
        info,
        [t.path for t in todo],
        out,
        stems=[t.stem for t in todo],
        on_batch=on_cells,
        run_keys=run_keys,
    )
    try:
        for i, outcome in enumerate(outcomes):
            yield i, outcome
            if stop():
                log.warning("stopping after %s (--fail-fast)", todo[i].name)
                break
    finally:
        outcomes.close()  # closes the inputs still open inside the pipeline
