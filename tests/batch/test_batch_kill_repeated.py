"""A batch SIGKILLed again and again at random moments, resumed each time, equals an uninterrupted run.

The default variant kills a 6-field batch 3 times; the slow one kills a 48-field batch 20 times
(the figure of issue 16). Kill moments are drawn uniformly over the uninterrupted run's wall time,
so they fall in start-up, screening, report writing and ledger appends alike.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _batch_helpers import read_summary
from _batch_helpers import temp_files
from conftest import write_field

REPO = Path(__file__).resolve().parents[2]


def _cmd(folder: Path, out: Path, bundle: Path) -> list[str]:
    return [
        sys.executable, "-c", "from wsi_screen.cli import main; main()",
        "--log-level", "warning", "batch", str(folder), "-o", str(out),
        "--model", str(bundle), "--device", "cpu", "--batch-size", "4",
    ]  # fmt: skip


def _run(folder: Path, out: Path, bundle: Path, *, kill_after: float | None = None) -> int:
    proc = subprocess.Popen(
        _cmd(folder, out, bundle), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    return proc.returncode


def _ok_inputs(out: Path) -> list[str]:
    lines = (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines()
    return sorted(e["input"] for e in map(json.loads, lines) if e.get("status") == "ok")


def _kill_and_resume(folder: Path, bundle: Path, tmp_path: Path, kills: int, seed: int) -> None:
    ref = tmp_path / "reference"
    t = time.monotonic()
    assert _run(folder, ref, bundle) == 0
    wall = time.monotonic() - t

    out = tmp_path / "killed"
    rng = random.Random(seed)
    killed = 0
    for _ in range(kills):
        code = _run(folder, out, bundle, kill_after=rng.uniform(0.2, wall))
        if code == 0:
            break  # this attempt finished before its kill moment: the batch is complete
        assert code == -signal.SIGKILL, f"exit {code}"
        killed += 1
    if not (out / "summary.csv").exists() or killed == kills:
        assert _run(folder, out, bundle) == 0
    assert killed >= 1, "no attempt was killed; the kill moments all fell after the end"

    assert read_summary(out) == read_summary(ref)
    names = sorted(p.parent.name for p in ref.glob("*/report.json"))
    assert sorted(p.parent.name for p in out.glob("*/report.json")) == names
    assert _ok_inputs(out) == _ok_inputs(ref), "one ok ledger line per input, none twice"
    assert temp_files(out) == []


def test_repeated_kills_then_resume_equal_an_uninterrupted_run(
    good_folder: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    _kill_and_resume(good_folder, tiny_bundle, tmp_path, kills=3, seed=16)


@pytest.mark.slow
def test_48_fields_killed_20_times(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fields"
    folder.mkdir()
    for i in range(48):
        write_field(folder / f"field_{i:02d}.png", seed=100 + i, width=400, height=350)
    _kill_and_resume(folder, tiny_bundle, tmp_path, kills=20, seed=48)
