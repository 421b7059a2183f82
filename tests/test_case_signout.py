"""The morning of issue 34: a case screened with identifiers, one field reviewed in the page's way, the
export applied twice, the field signed, the case signed, and the case screened again: refused, then
archived. Nothing signed is lost, and every surface follows the review.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.corrections import screening_of

CASE = Path(__file__).resolve().parents[1] / "examples" / "case_matek"


def _cli(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert "Traceback" not in res.output, res.output
    assert res.exit_code == 0, res.output
    return res.output


def _export(field_dir: Path, tmp_path: Path) -> Path:
    """What the page exports after a reclassification, a removal and an added cell."""
    field = json.loads((field_dir / "report.json").read_text())
    cells = pl.read_parquet(field_dir / "cells.parquet")
    ids = cells.filter(~pl.col("predicted_class").is_in(["ART", "NIF"]))["cell_id"].to_list()
    w, h = field["input"]["width"], field["input"]["height"]
    items = [
        {"kind": "reclassify", "cell_id": ids[0], "class": "EBO"},
        {"kind": "remove", "cell_id": ids[1], "reason": "duplicate"},
        {"kind": "add", "add_id": "a5c0ffee-1", "x": w / 2 + 0.5, "y": h / 2 + 0.5, "class": "PLM"},
    ]
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": field["input"]["sha256"],
           "screening": screening_of(field), "reviewer": "AB", "corrections": items}  # fmt: skip
    path = tmp_path / "corrections.json"
    path.write_text(json.dumps(doc))
    return path


def _summary_row(out: Path, name: str) -> dict[str, str]:
    rows = list(csv.DictReader((out / "summary.csv").open(encoding="utf-8")))
    return next(r for r in rows if r["output"] == f"{name}/report.json")


def test_the_whole_morning(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    shutil.copytree(CASE, cases / "patient_7")
    (tmp_path / "ids.csv").write_text("input,sample_id,patient_id\ncases/patient_7,S-001,P-042\n")
    out = tmp_path / "out"
    screen = ["--mpp", "0.0862", "--device", "cpu"]
    _cli("batch", str(cases), "-o", str(out), "--ids", str(tmp_path / "ids.csv"), *screen)
    case_dir, field_dir = out / "patient_7", out / "patient_7" / "fields" / "field_02"
    case = json.loads((case_dir / "report.json").read_text())
    assert len(case["fields"]) == 4
    assert case["identifiers"]["sample_id"] == "S-001" and case["identifiers"]["patient_id"] == "P-042"
    page = (case_dir / "report.html").read_text()
    assert ">S-001<" in page and ">P-042<" in page and "not reviewed" in page

    # one field reviewed in the page's way; the export applied twice
    corr = _export(field_dir, tmp_path)
    first = _cli("review", "apply", str(field_dir), str(corr))
    assert "(3 cell(s) changed now)" in first and "case patient_7: pooled figures recomputed" in first
    once = json.loads((field_dir / "report.json").read_text())
    case_once = json.loads((case_dir / "report.json").read_text())
    again = _cli("review", "apply", str(field_dir), str(corr))
    assert "0 cells changed" in again
    twice = json.loads((field_dir / "report.json").read_text())
    for key in ("cells_detected", "cells_counted", "differential", "blast", "flags"):
        assert twice[key] == once[key]
    assert pl.read_parquet(field_dir / "cells.parquet").filter(pl.col("origin") == "reviewer").height == 1
    assert json.loads((case_dir / "report.json").read_text()) == case_once  # nothing new for the case

    # the field and then the case signed
    assert "version 2 signed by AB" in _cli("review", "sign", str(field_dir), "--reviewer", "AB")
    signed_case = _cli("review", "sign", str(case_dir), "--reviewer", "CD", "--comment", "as reviewed")
    assert "case patient_7: version" in signed_case and "signed by CD" in signed_case
    case = json.loads((case_dir / "report.json").read_text())
    assert case["signoff"]["status"] == "signed" and case["signoff"]["reviewer"] == "CD"
    assert case["blast"] == case_once["blast"] and case["differential"]["PLM"]["count"] >= 1
    row = next(f for f in case["fields"] if f["name"] == "field_02")
    assert (
        row["blast_percent"] == once["blast"]["percent"] and row["review_state"] == "signed version 2 by AB"
    )
    assert check_trail(case["audit"], where="case")[-1]["action"] == "signed"
    frozen = json.loads(
        (case_dir / "versions" / f"v{case['signoff']['version']}" / "report.json").read_text()
    )
    assert frozen["blast"] == case["blast"]
    assert "intact" in _cli("review", "verify", str(case_dir))

    # every surface shows the reviewed figures, the identifiers and the signatures
    page = (case_dir / "report.html").read_text()
    assert ">S-001<" in page and "signed by CD" in page and "signed version 2 by AB" in page
    assert f"{case['blast']['percent']:.1f}" in page
    index = (out / "index.html").read_text()
    assert f"{case['blast']['percent']:.1f}" in index and ">signed<" in index
    summary = _summary_row(out, "patient_7")
    assert float(summary["blast_percent"]) == case["blast"]["percent"] and summary["reviewed"] == "true"
    assert float(summary["time_detect_s"]) > 0 and float(summary["time_classify_s"]) > 0  # summed over fields
    assert "Pooled result (all 4 fields)" in page

    # screening again: refused while a review is there, archived with --rescreen
    res = CliRunner().invoke(main, ["run", str(cases / "patient_7"), "-o", str(out), *screen])
    assert res.exit_code == 2 and "patient_7/report.json holds version" in res.output, res.output
    assert json.loads((case_dir / "report.json").read_text()) == case
    _cli("run", str(cases / "patient_7"), "-o", str(out), "--sample-id", "S-001", "--patient-id", "P-042",
         "--rescreen", *screen)  # fmt: skip
    now = json.loads((case_dir / "report.json").read_text())
    assert "signoff" not in now and now["audit"][0]["details"]["supersedes"]["status"] == "signed"
    (kept,) = (case_dir / "superseded").iterdir()
    archived = json.loads((kept / "report.json").read_text())
    assert archived["signoff"] == case["signoff"] and archived["audit"][-1]["action"] == "superseded"
    assert (
        json.loads((kept / "versions" / f"v{case['signoff']['version']}" / "report.json").read_text())[
            "blast"
        ]
        == case["blast"]
    )
    (field_kept,) = (field_dir / "superseded").iterdir()
    assert json.loads((field_kept / "versions" / "v2" / "report.json").read_text())["blast"] == once["blast"]
