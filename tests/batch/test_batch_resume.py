"""A batch killed with SIGKILL mid-run resumes to the same summary as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _batch_helpers import N_GOOD
from _batch_helpers import read_summary
from _batch_helpers import temp_files
from click.testing import Result

REPO = Path(__file__).resolve().parents[2]


def _start_batch(folder: Path, out: Path, bundle: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-c", "from wsi_screen.cli import main; main()",
        "--log-level", "warning", "batch", str(folder), "-o", str(out),
        "--model", str(bundle), "--device", "cpu", "--batch-size", "4",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after_first_input(proc: subprocess.Popen[bytes], out: Path, timeout_s: float = 120.0) -> None:
    """SIGKILL the batch as soon as one input is complete (its report.json and ledger line written)."""
    deadline = time.monotonic() + timeout_s
    ledger = out / "ledger.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and ledger.read_bytes().count(b"\n") >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)


def test_sigkill_then_resume_gives_the_uninterrupted_summary(
    good_folder: Path, tiny_bundle: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    proc = _start_batch(good_folder, out, tiny_bundle)
    _kill_after_first_input(proc, out)
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed"
    assert not (out / "summary.csv").exists()
    n_done = len(list(out.glob("*/report.json")))
    assert 1 <= n_done < N_GOOD
    # a temp file as a kill during a write leaves it; resuming must remove it
    stale = out / f"field_{N_GOOD - 1:02d}" / ".report.json.k1ll3d.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text('{"half": ')

    res = run_batch_cli(str(good_folder), "-o", str(out), "--batch-size", "4")
    assert res.exit_code == 0, res.output
    skipped = int(res.output.split(" done earlier")[0].rsplit(",", 1)[-1])
    assert skipped >= 1  # finished inputs were not screened again
    assert temp_files(out) == []

    ref = tmp_path / "reference"
    assert run_batch_cli(str(good_folder), "-o", str(ref), "--batch-size", "4").exit_code == 0
    assert read_summary(out) == read_summary(ref)
    assert len(read_summary(out)) == N_GOOD
    # nothing duplicated: one ok ledger line per input
    ok_lines = [
        json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines() if '"ok"' in line
    ]
    assert sorted(e["input"] for e in ok_lines) == sorted(r["input"] for r in read_summary(ref))
    assert sorted(p.parent.name for p in out.glob("*/report.json")) == sorted(
        p.parent.name for p in ref.glob("*/report.json")
    )
