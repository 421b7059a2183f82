"""``wsi-screen batch ROOT``: each sub-folder of fields is a case, slides and fields beside are inputs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from _batch_helpers import read_summary
from click.testing import Result
from conftest import write_field


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "night"
    for case, seeds in (("patient_1", (1, 2, 3)), ("patient_2", (4, 5))):
        folder = root / case
        folder.mkdir(parents=True)
        for k, s in enumerate(seeds):
            write_field(folder / f"field_{k:02d}.png", seed=s)
        (folder / "field_00.json").write_text("{}")  # a sidecar inside a case: listed there as skipped
    write_field(root / "loose.png", seed=9)  # a field beside the cases: its own input
    (root / "notes.txt").write_text("run of 3 Dec")  # a sidecar beside them
    (root / "empty_folder").mkdir()
    return root


def test_batch_screens_case_folders_and_resumes_per_case(
    tmp_path: Path, run_batch_cli: Callable[..., Result]
) -> None:
    root = _root(tmp_path)
    out = tmp_path / "out"
    res = run_batch_cli(str(root), "-o", str(out), "--mpp", "0.0862")
    assert res.exit_code == 0, res.output
    rows = {r["input"]: r for r in read_summary(out)}
    assert sorted(rows) == ["empty_folder", "loose.png", "notes.txt", "patient_1", "patient_2"]
    assert {k: r["status"] for k, r in rows.items()} == {
        "empty_folder": "skipped", "loose.png": "ok", "notes.txt": "skipped", "patient_1": "ok", "patient_2": "ok",
    }  # fmt: skip
    for case, n in (("patient_1", 3), ("patient_2", 2)):
        report = json.loads((out / case / "report.json").read_text())
        assert report["input"]["kind"] == "case" and report["case"]["n_fields"] == n
        assert report["case"]["skipped"][0]["reason"].startswith("not an image")
        assert report["batch"]["run_key"]
        per_field = [
            json.loads((out / case / f["report"]).with_name("report.json").read_text())
            for f in report["fields"]
        ]
        assert (
            int(rows[case]["cells_detected"])
            == report["cells_detected"]
            == sum(r["cells_detected"] for r in per_field)
        )
        assert rows[case]["output"] == f"{case}/report.json"
    # the same command again: every case and input is done
    res = run_batch_cli(str(root), "-o", str(out), "--mpp", "0.0862")
    assert res.exit_code == 0 and "0 screened, 3 done earlier" in res.output, res.output
    # a changed field makes its case new; the other case stays done
    shutil.copy(root / "patient_1" / "field_00.png", root / "patient_2" / "field_01.png")
    res = run_batch_cli(str(root), "-o", str(out), "--mpp", "0.0862")
    assert res.exit_code == 0 and "1 screened, 2 done earlier" in res.output, res.output
