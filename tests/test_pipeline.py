"""The staged pipeline's fault isolation and bookkeeping (Screener), with the real detector and a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest
from _synthetic import grid_centres
from _synthetic import synthetic_field

from wsi_screen import stages
from wsi_screen.errors import WsiScreenError
from wsi_screen.pipeline import Screener
from wsi_screen.pipeline import unique_stems
from wsi_screen.runner import build_screener


def _field(folder: Path, name: str, n_cells: bool = True, seed: int = 0) -> Path:
    centres = grid_centres(600, 500, 240) if n_cells else []
    img = synthetic_field(600, 500, centres, seed=seed)
    path = folder / name
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def _screener(bundle: Path, batch_size: int = 64) -> Screener:
    scr, _ = build_screener(model=str(bundle), detector="foreground", mpp=0.0862, batch_size=batch_size)
    return scr


@pytest.fixture
def screener(tiny_bundle: Path) -> Screener:
    return _screener(tiny_bundle)


def test_unique_stems_never_take_another_inputs_own_stem() -> None:
    paths = [Path("x/a.png"), Path("y/a.tif"), Path("a-2.png"), Path("z/a.jpg")]
    stems = unique_stems(paths)
    assert stems == ["a", "a-3", "a-2", "a-4"]
    assert len(set(stems)) == len(stems)


def test_unreadable_region_fails_only_its_own_input_in_a_shared_batch(
    tmp_path: Path, screener: Screener, monkeypatch: pytest.MonkeyPatch
) -> None:
    good1 = _field(tmp_path, "good1.png", seed=1)
    bad = _field(tmp_path, "bad.png", seed=2)
    good2 = _field(tmp_path, "good2.png", seed=3)
    from wsi_screen import patches

    real = patches.crop_patches

    def crop_patches(source: Any, cells: Any, **kw: Any) -> Any:
        if Path(str(source.path)).name == "bad.png":  # ahead of the model (Precut) and on its thread
            msg = f"{bad}: cannot decode region"
            raise WsiScreenError(msg)
        return real(source, cells, **kw)

    monkeypatch.setattr(patches, "crop_patches", crop_patches)
    out = {it.path.name: it for it in screener.screen([good1, bad, good2])}
    failure = out["bad.png"].failure
    assert failure is not None and failure.stage == "patch" and "bad.png" in failure.message
    for name in ("good1.png", "good2.png"):
        item = out[name]
        assert item.ok, item.failure
        assert sum(len(c.cells) for c in item.calls) == len(item.cells) > 0


def test_classifier_error_fails_the_batch_inputs_and_later_inputs_go_on(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _field(tmp_path, "a.png", seed=1)
    b = _field(tmp_path, "b.png", seed=2)
    screener = _screener(tiny_bundle, batch_size=4)  # a's cells fill whole batches of their own
    real = screener.classifier.classify
    calls = {"n": 0}

    def classify(batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            msg = "out of memory"
            raise RuntimeError(msg)
        return real(batch)

    monkeypatch.setattr(screener.classifier, "classify", classify)
    out = {it.path.name: it for it in screener.screen([a, b])}
    assert not out["a.png"].ok and out["a.png"].failure is not None
    assert out["a.png"].failure.stage == "classify"
    assert "a.png" in out["a.png"].failure.message and "out of memory" in out["a.png"].failure.message
    assert out["a.png"].calls == []
    assert out["b.png"].ok
    assert sum(len(c.cells) for c in out["b.png"].calls) == len(out["b.png"].cells) > 0


class _OpenCounter:
    """Wraps ``open_source`` to count the sources open at any moment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = 0
        self.peak = 0
        real = stages.open_source

        def open_source(path: Any, **kw: Any) -> Any:
            src = real(path, **kw)
            real_close = src.close
            self.open += 1
            self.peak = max(self.peak, self.open)

            def close() -> None:
                self.open -= 1
                real_close()

            src.close = close
            return src

        monkeypatch.setattr(stages, "open_source", open_source)


def test_inputs_waiting_for_a_batch_are_bounded_and_all_sources_closed(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [_field(tmp_path, "cells.png", seed=1)]
    paths += [_field(tmp_path, f"empty{i}.png", n_cells=False) for i in range(12)]
    screener = _screener(tiny_bundle, batch_size=10_000)  # only the pending bound flushes it
    screener.max_pending = 3
    counter = _OpenCounter(monkeypatch)
    items = list(screener.screen(paths))
    assert [it.path.name for it in items] == [p.name for p in paths]
    assert all(it.ok for it in items) and len(items[0].cells) > 0 and not items[1].cells
    # waiting for the batch, plus the one being added, plus those read ahead on worker threads
    assert counter.peak <= screener.max_pending + 1 + screener.cfg.pipeline.read_ahead
    assert counter.open == 0


def test_stopping_early_closes_every_pending_source(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [_field(tmp_path, f"f{i}.png", seed=i) for i in range(3)]
    screener = _screener(tiny_bundle, batch_size=10_000)
    counter = _OpenCounter(monkeypatch)
    gen = screener.screen(paths)
    next(gen)
    gen.close()
    assert counter.peak == 3 and counter.open == 0


def test_reports_echo_the_device_and_batch_size_actually_used(tiny_bundle: Path) -> None:
    from wsi_screen.device import default_batch_size

    scr, _ = build_screener(model=str(tiny_bundle))  # device "auto" and batch size 0 by default
    assert scr.cfg.classify.device == str(scr.classifier.device) != "auto"
    assert (
        scr.cfg.classify.batch_size == scr.classifier.batch_size == default_batch_size(scr.classifier.device)
    )
    given, _ = build_screener(model=str(tiny_bundle), batch_size=7)
    assert given.cfg.classify.batch_size == given.classifier.batch_size == 7
