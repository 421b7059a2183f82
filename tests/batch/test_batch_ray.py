"""The Ray engine (local Ray, 2 CPUs) writes the same summary as the local engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from _batch_helpers import GOOD
from _batch_helpers import read_summary
from _batch_helpers import temp_files
from click.testing import Result

ray = pytest.importorskip("ray")


def test_ray_engine_matches_local_engine(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    local = tmp_path / "local"
    on_ray = tmp_path / "ray"
    # two good fields and three bad inputs keep Ray's start-up the main cost
    args = ("--pattern", "[abdfh]_*")
    assert run_batch_cli(str(mixed_folder), "-o", str(local), *args).exit_code == 1
    res = run_batch_cli(str(mixed_folder), "-o", str(on_ray), *args, "--engine", "ray", "--workers", "2")
    assert res.exit_code == 1, res.output
    assert not ray.is_initialized()  # the batch shut down the Ray it started
    rows = read_summary(on_ray)
    assert rows == read_summary(local)
    assert [r["status"] for r in rows] == [
        "ok",
        "ok",
        "failed",
        "failed",
        "skipped",
    ]  # h_notes.txt: a sidecar
    assert [r["input"] for r in rows[:2]] == list(GOOD[:2])
    for stem in ("a_field", "b_field"):
        a = json.loads((local / stem / "report.json").read_text())
        b = json.loads((on_ray / stem / "report.json").read_text())
        volatile = {"timings_s", "generated_at"}  # everything else is the same file under both engines
        assert {k: v for k, v in a.items() if k not in volatile} == {
            k: v for k, v in b.items() if k not in volatile
        }
        assert (on_ray / stem / "cells.parquet").read_bytes() == (local / stem / "cells.parquet").read_bytes()
    meta = json.loads((on_ray / "run_metadata.json").read_text())
    assert meta["engine"]["name"] == "ray"
    assert meta["engine"]["workers"] == 2
    assert meta["engine"]["devices"] == ["cpu"]
    from wsi_screen.device import default_threads

    # each actor uses the CPUs Ray reserved for it, not every core of the machine
    assert meta["engine"]["threads_per_worker"] == max(1, max(2, default_threads()) // 2)
    assert temp_files(on_ray) == []
    # resuming a Ray batch skips what is done (and starts no Ray when nothing is left)
    res = run_batch_cli(str(mixed_folder), "-o", str(on_ray), "--pattern", "[ab]_*", "--engine", "ray")
    assert res.exit_code == 0
    assert "0 screened, 2 done earlier" in res.output


class _FakeRay:
    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_worker_plan_gives_one_gpu_per_worker() -> None:
    from wsi_screen.batch.ray_engine import plan_workers
    from wsi_screen.errors import WsiScreenError

    assert plan_workers(_FakeRay(CPU=16, GPU=4), device="auto", workers=None) == (4, True)
    assert plan_workers(_FakeRay(CPU=16, GPU=4), device="cuda:1", workers=8) == (4, True)  # capped
    assert plan_workers(_FakeRay(CPU=16, GPU=4), device="cpu", workers=3) == (3, False)
    assert plan_workers(_FakeRay(CPU=2), device="auto", workers=None) == (2, False)
    assert plan_workers(_FakeRay(CPU=2), device="auto", workers=6) == (2, False)
    with pytest.raises(WsiScreenError, match="no GPU"):
        plan_workers(_FakeRay(CPU=8), device="cuda", workers=None)


def test_cpus_per_worker_fit_the_nodes() -> None:
    from wsi_screen.batch.ray_engine import cpus_per_worker

    assert cpus_per_worker([2], 2) == 1
    assert cpus_per_worker([16], 2) == 8
    assert cpus_per_worker([16], 3) == 5
    assert cpus_per_worker([8, 8], 3) == 4  # 5 each would fit only two actors on 8-core nodes
    assert cpus_per_worker([32, 4], 2) == 16  # both fit on the 32-core node
    assert cpus_per_worker([2], 8) == 1
