"""The worker pipeline: read-ahead and write-behind threads keep order, pass errors on, stop cleanly.

The helpers are exercised on their own (ordering under random delays, an error in the middle, a
consumer that stops early) and inside the real Screener and report writer on synthetic fields
(threads give the same reports as one thread; an interrupted run leaves no source open and no
half-written report).
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import polars as pl
import pytest
from _synthetic import grid_centres
from _synthetic import synthetic_field

from wsi_screen import stages
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import StoppedError
from wsi_screen.overlap import read_ahead
from wsi_screen.overlap import write_behind
from wsi_screen.pipeline_config import PipelineConfig
from wsi_screen.runner import build_screener
from wsi_screen.runner import screen_to_folder
from wsi_screen.sources import open_source


def _slow_square(x: int) -> int:
    time.sleep(random.random() * 0.01)
    return x * x


def test_read_ahead_keeps_order_and_bounds_work_in_flight() -> None:
    started: list[int] = []
    consumed: list[int] = []

    def fn(x: int) -> int:
        started.append(x)
        return _slow_square(x)

    for value in read_ahead(fn, range(40), workers=3, depth=4):
        # never more than depth + 1 started beyond what the consumer has taken
        assert len(started) <= len(consumed) + 1 + 4
        consumed.append(value)
    assert consumed == [x * x for x in range(40)]


def test_read_ahead_inline_runs_in_the_callers_thread() -> None:
    threads = set()

    def fn(x: int) -> int:
        threads.add(threading.current_thread())
        return x

    assert list(read_ahead(fn, range(5), workers=0, depth=3)) == list(range(5))
    assert threads == {threading.current_thread()}


def test_read_ahead_raises_where_the_failed_result_belongs_and_discards_the_rest() -> None:
    discarded: list[int] = []

    def fn(x: int) -> int:
        if x == 3:
            msg = "boom at 3"
            raise ValueError(msg)
        return x

    got: list[int] = []
    with pytest.raises(ValueError, match="boom at 3"):
        got.extend(read_ahead(fn, range(10), workers=2, depth=3, discard=discarded.append))
    assert got == [0, 1, 2]
    assert discarded and all(d > 3 for d in discarded)  # computed ahead, never yielded


def test_read_ahead_stopped_early_sets_stop_and_discards_what_was_read() -> None:
    stop = threading.Event()
    discarded: list[int] = []
    gen = read_ahead(_slow_square, range(100), workers=2, depth=3, discard=discarded.append, stop=stop)
    assert next(gen) == 0
    gen.close()
    assert stop.is_set()
    assert 1 <= len(discarded) <= 3 and all(d > 0 for d in discarded)
    assert not [t for t in threading.enumerate() if t.name.startswith("wsi-screen-read")]


def test_write_behind_keeps_order_bounds_the_queue_and_closes_the_producer() -> None:
    produced: list[int] = []
    closed: list[bool] = []

    def producer() -> Any:
        try:
            for i in range(30):
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    out = []
    for item, res in write_behind(_slow_square, producer(), depth=2):
        assert len(produced) <= len(out) + 1 + 2  # the one yielded, plus at most depth behind
        out.append((item, res))
    assert out == [(i, i * i) for i in range(30)]
    assert closed == [True]

    gen = write_behind(_slow_square, producer(), depth=2)
    next(gen)
    gen.close()
    assert closed == [True, True]
    assert not [t for t in threading.enumerate() if t.name.startswith("wsi-screen-write")]


def test_write_behind_passes_a_writer_error_on() -> None:
    def fn(x: int) -> int:
        if x == 2:
            msg = "disk on fire"
            raise OSError(msg)
        return x

    got: list[tuple[int, int]] = []
    with pytest.raises(OSError, match="disk on fire"):
        got.extend(write_behind(fn, iter(range(5)), depth=2))
    assert [item for item, _ in got] == [0, 1]


def test_pipeline_settings_are_checked_and_resolved() -> None:
    with pytest.raises(ConfigError, match="pipeline.workers"):
        PipelineConfig(workers=-2)
    with pytest.raises(ConfigError, match="pipeline.write_behind"):
        ScreenConfig.from_dict({"pipeline": {"write_behind": 65}})
    assert PipelineConfig().resolved_workers() >= 1
    assert PipelineConfig(workers=3).resolved_workers() == 3  # the time limit holds on workers too


def _fields(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        img = synthetic_field(640, 520, grid_centres(640, 520, 230), seed=i)
        path = folder / f"field_{i}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        paths.append(path)
    return paths


def _screen(bundle: Path, paths: list[Path], out: Path, **pipeline: int) -> dict[str, Any]:
    cfg = ScreenConfig().replace("pipeline", **pipeline)
    scr, info = build_screener(model=str(bundle), mpp=0.0862, batch_size=16, config=cfg)
    outcomes = list(screen_to_folder(scr, info, paths, out))
    assert [o.path for o in outcomes] == paths
    return {
        o.path.name: (
            json.loads((o.out_dir / "report.json").read_text()),
            pl.read_parquet(o.out_dir / "cells.parquet"),
        )
        for o in outcomes
    }


def test_threads_give_the_reports_of_one_thread(tmp_path: Path, tiny_bundle: Path) -> None:
    paths = _fields(tmp_path, 5)
    serial = _screen(tiny_bundle, paths, tmp_path / "serial", workers=0, write_behind=0)
    threaded = _screen(tiny_bundle, paths, tmp_path / "threaded", workers=2, read_ahead=2, write_behind=2)
    for name, (rep, cells) in serial.items():
        other, other_cells = threaded[name]
        assert rep["cells_detected"] == other["cells_detected"] > 0
        assert rep["differential"] == other["differential"]
        assert cells.equals(other_cells)


def test_interrupting_a_threaded_run_leaves_no_source_open_and_no_partial_report(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _fields(tmp_path, 8)
    open_now: list[int] = [0]
    lock = threading.Lock()

    def counting_open(path: Any, **kw: Any) -> Any:
        src = open_source(path, **kw)
        real_close = src.close
        with lock:
            open_now[0] += 1

        def close() -> None:
            with lock:
                open_now[0] -= 1
            real_close()

        src.close = close
        return src

    monkeypatch.setattr(stages, "open_source", counting_open)
    cfg = ScreenConfig().replace("pipeline", workers=2, read_ahead=3, write_behind=2)
    scr, info = build_screener(model=str(tiny_bundle), mpp=0.0862, batch_size=4, config=cfg)
    gen = screen_to_folder(scr, info, paths, tmp_path / "out")
    first = next(gen)
    assert first.failure is None
    gen.close()  # what Ctrl-C does to the consumer
    assert open_now[0] == 0
    for folder in (tmp_path / "out").iterdir():  # every folder written holds a whole report
        assert (folder / "report.json").is_file() and (folder / "report.html").is_file()
        assert not [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_a_set_stop_event_ends_the_search_at_the_next_tile(tmp_path: Path, tiny_bundle: Path) -> None:
    scr, _ = build_screener(model=str(tiny_bundle), mpp=0.0862)
    path = _fields(tmp_path, 1)[0]
    stop = threading.Event()
    stop.set()
    with open_source(path) as src, pytest.raises(StoppedError):
        stages.detect_cells(src, scr.detector, scr.cfg.tiling, mpp=0.0862, stop=stop)


def test_fields_cut_ahead_give_the_reports_of_patches_cut_on_the_model_thread(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patches cut and resized on the read-ahead worker (Precut) change no figure and no probability."""
    from wsi_screen import patches as patches_mod
    from wsi_screen import pipeline

    paths = _fields(tmp_path, 3)
    cut_on_model_thread: list[str] = []
    real = stages.iter_patch_batches

    def spy(*a: Any, **k: Any) -> Any:
        cut_on_model_thread.append(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(stages, "iter_patch_batches", spy)
    ahead = _screen(tiny_bundle, paths, tmp_path / "ahead", workers=1, read_ahead=2, write_behind=0)
    assert cut_on_model_thread == []  # every field's patches came from its Precut
    monkeypatch.setattr(pipeline, "PRECUT_MAX_CELLS", 0)
    inline = _screen(tiny_bundle, paths, tmp_path / "inline", workers=1, read_ahead=2, write_behind=0)
    assert cut_on_model_thread and set(cut_on_model_thread) == {"MainThread"}

    def broken(*a: Any, **k: Any) -> Any:
        msg = "cannot cut ahead"
        raise RuntimeError(msg)

    monkeypatch.setattr(pipeline, "PRECUT_MAX_CELLS", patches_mod.PRECUT_MAX_CELLS)
    monkeypatch.setattr(pipeline, "precut", broken)
    fallback = _screen(tiny_bundle, paths, tmp_path / "fallback", workers=1, read_ahead=2, write_behind=0)
    for name, (rep, cells) in inline.items():
        for other, other_cells in (ahead[name], fallback[name]):
            assert rep["cells_detected"] == other["cells_detected"] > 0
            assert rep["differential"] == other["differential"]
            assert cells.equals(other_cells)


def test_precut_hands_patches_out_in_cell_order() -> None:
    import numpy as np

    from wsi_screen.patches import Precut
    from wsi_screen.types import Cell

    cells = tuple(Cell(i, "f", float(i), 0.0, (0, 0, 1, 1), 1.0, "test") for i in range(5))
    pixels = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1).repeat(3, axis=3)
    cut = Precut(cells, pixels, pixels * 2)
    first, _ = cut.take(cells[:2])
    with pytest.raises(IndexError, match="out of order"):
        cut.take(cells[3:])  # skipping cell 2 would hand cell 2's patch to cell 3
    second, second_in = cut.take(cells[2:])
    assert first[:, 0, 0, 0].tolist() == [0, 1] and second[:, 0, 0, 0].tolist() == [2, 3, 4]
    assert second_in is not None and second_in[:, 0, 0, 0].tolist() == [4, 6, 8]
    with pytest.raises(IndexError, match="out of order"):
        cut.take(cells[:1])


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_stage_threads_run_at_lower_priority_than_the_model() -> None:
    import os

    def niceness(_: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = niceness(0)
    assert list(read_ahead(niceness, range(3), workers=2, depth=2, nice=5)) == [min(19, base + 5)] * 3
    assert [n for _, n in write_behind(niceness, range(2), depth=1, nice=7)] == [min(19, base + 7)] * 2
    assert list(read_ahead(niceness, range(2), workers=1, depth=1)) == [base] * 2  # nice 0: unchanged
    assert niceness(0) == base  # the caller's (the model's) thread keeps its priority
    with pytest.raises(ConfigError, match="worker_nice must be 0-19"):
        PipelineConfig(worker_nice=20)


def test_a_precut_that_does_not_match_its_cells_fails_its_input_only(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsi_screen import patches as patches_mod
    from wsi_screen import pipeline

    paths = _fields(tmp_path, 3)
    real = patches_mod.precut

    def misaligned(source: Any, cells: Any, **kw: Any) -> Any:
        cut = real(source, cells, **kw)
        if "field_1" in str(source.path):
            cut.cells = tuple(reversed(cut.cells))  # would hand each cell another cell's patch
        return cut

    monkeypatch.setattr(pipeline, "precut", misaligned)
    cfg = ScreenConfig().replace("pipeline", workers=1, write_behind=0)
    scr, _ = build_screener(model=str(tiny_bundle), mpp=0.0862, batch_size=16, config=cfg)
    items = {it.path.name: it for it in scr.screen(paths)}
    bad = items["field_1.png"].failure
    assert bad is not None and bad.stage == "patch" and "out of order" in bad.message
    for name in ("field_0.png", "field_2.png"):
        assert items[name].ok and sum(len(c.cells) for c in items[name].calls) == len(items[name].cells) > 0
