"""Case and field names go through the output-name cleaning: no field folder outside fields/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.outnames import is_clean

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"
HOSTILE = ["<img src=x onerror=alert(1)>", "=1+1", "\x1b[31mred", "summary.csv"]


def _run(args: list[str], bundle: Path) -> tuple[int, str]:
    res = CliRunner().invoke(main, [*args, "--model", str(bundle), "--device", "cpu"])
    return res.exit_code, res.output


def _field_folders(case_dir: Path) -> list[str]:
    return sorted(p.name for p in (case_dir / "fields").iterdir())


def test_a_field_named_dot_dot_stays_in_fields(tmp_path: Path, tiny_bundle: Path) -> None:
    """``...jpg`` has the stem ``..``: its reports went into the case folder itself."""
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(FIELD, d / "...jpg")
    shutil.copy(FIELD, d / "b.jpg")
    out = tmp_path / "out"
    code, output = _run(
        ["run", "--case", "cc", str(d / "...jpg"), str(d / "b.jpg"), "-o", str(out)], tiny_bundle
    )
    assert code == 0, output
    case_dir = out / "cc"
    assert _field_folders(case_dir) == ["b", "input"]
    assert (case_dir / "fields" / "input" / "report.json").is_file()
    # nothing of a field's own reports in the case folder: only the case's files and fields/
    assert sorted(p.name for p in case_dir.iterdir()) == [
        "cells.parquet",
        "fields",
        "report.html",
        "report.json",
    ]
    report = json.loads((case_dir / "report.json").read_text())
    assert [f["name"] for f in report["fields"]] == ["input", "b"]
    assert report["fields"][0]["report"] == "fields/input/report.html"


def test_hostile_field_names_become_plain_folder_names(tmp_path: Path, tiny_bundle: Path) -> None:
    case = tmp_path / "a case <b>"
    case.mkdir()
    for name in HOSTILE:
        shutil.copy(FIELD, case / f"{name}.jpg")
    out = tmp_path / "out"
    code, output = _run(["run", str(case), "-o", str(out)], tiny_bundle)
    assert code == 0, output
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["a_case_b_"]
    case_dir = out / "a_case_b_"
    names = _field_folders(case_dir)
    assert len(names) == len(HOSTILE)
    assert all(is_clean(n) and "<" not in n and "=" not in n and "\x1b" not in n for n in names), names
    report = json.loads((case_dir / "report.json").read_text())
    assert sorted(f["name"] for f in report["fields"]) == names
    html = (case_dir / "report.html").read_text()
    assert "<img src=x" not in html and "\x1b" not in html


def test_a_case_report_naming_a_path_as_field_is_refused(tmp_path: Path) -> None:
    """refresh_case reads fields/<name>/cells.parquet: a name from report.json is never a path."""
    import sys

    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
    from _fake import fake_calls
    from _fake import write_fake_report

    from wsi_screen.reports.case_review import refresh_case
    from wsi_screen.reports.corrections import ReviewError

    src = tmp_path / "f.png"
    src.write_bytes(b"x")
    calls, _ = fake_calls(
        5, 400, 300, seed=1, classes=("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")
    )
    case_dir = tmp_path / "OUT" / "cc"
    report = write_fake_report(case_dir, src, calls=calls)
    for name in ("..", "../../elsewhere", "a/b"):
        doc = {
            **report,
            "input": {**report["input"], "kind": "case"},
            "fields": [{"name": name, "status": "counted"}],
        }
        (case_dir / "report.json").write_text(json.dumps(doc))
        with pytest.raises(ReviewError, match="is not one wsi-screen writes"):
            refresh_case(case_dir)
