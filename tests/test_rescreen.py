"""No screening erases a review: `run` into a reviewed folder stops (exit 2) unless --rescreen, which archives it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "reports"))

from _fake import fake_calls  # noqa: E402
from _fake import write_fake_report  # noqa: E402

from wsi_screen.cli import main  # noqa: E402
from wsi_screen.reports.audit import check_trail  # noqa: E402
from wsi_screen.reports.audit_anchor import read_anchor  # noqa: E402
from wsi_screen.reports.corrections import screening_of  # noqa: E402
from wsi_screen.reports.rescreen import ReviewHeldError  # noqa: E402
from wsi_screen.reports.rescreen import refuse_held_reviews  # noqa: E402
from wsi_screen.reports.review import apply_review  # noqa: E402

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")
CASE = Path(__file__).resolve().parents[1] / "examples" / "case_matek"


def _sign(out: Path, report: dict, tmp_path: Path) -> dict:
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "corrections": [{"kind": "reclassify", "cell_id": 1, "class": "EBO"}]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(doc))
    return apply_review(out, tmp_path / "c.json", reviewer="AB", sign=True)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, dict]:
    src = tmp_path / "field.png"
    src.write_bytes(b"a field signed the day before")
    out = tmp_path / "OUT" / "field"
    calls, _ = fake_calls(24, 1200, 900, seed=3, classes=MODEL8)
    return src, out, _sign(out, write_fake_report(out, src, calls=calls), tmp_path)


def test_a_reviewed_folder_is_named_and_an_unreviewed_one_is_not(signed, tmp_path: Path) -> None:
    _, out, _ = signed
    with pytest.raises(ReviewHeldError, match=r"field/report\.json holds version 1 signed by AB") as e:
        refuse_held_reviews([out, tmp_path / "OUT" / "nothing_there"])
    assert "--rescreen" in str(e.value)
    calls, _ = fake_calls(10, 600, 600, seed=1, classes=MODEL8)
    plain = tmp_path / "OUT" / "plain"
    write_fake_report(plain, tmp_path / "field.png", calls=calls)
    refuse_held_reviews([plain])  # screened, never reviewed: nothing to lose


def test_run_into_a_signed_folder_stops_before_screening(signed) -> None:
    src, out, report = signed
    before = (out / "report.json").read_bytes()
    res = CliRunner().invoke(main, ["run", str(src), "-o", str(out.parent), "--model", "no-such-model"])
    assert res.exit_code == 2, res.output
    assert "report.json holds version 1 signed by AB" in res.output and "--rescreen" in res.output
    assert "Usage" not in res.output and "Traceback" not in res.output
    assert (out / "report.json").read_bytes() == before  # nothing screened, not even the model loaded


def test_a_new_screening_archives_the_signed_report_with_an_audit_event(signed, tmp_path: Path) -> None:
    src, out, report = signed
    signed_json = (out / "report.json").read_text()
    calls, _ = fake_calls(30, 1200, 900, seed=9, classes=MODEL8)
    new = write_fake_report(out, src, calls=calls)  # what `run --rescreen` writes
    (kept,) = (out / "superseded").iterdir()
    archived = json.loads((kept / "report.json").read_text())
    assert archived["signoff"] == report["signoff"] and archived["blast"] == report["blast"]
    trail = check_trail(archived["audit"], where="archive")
    assert [e["action"] for e in trail] == ["screened", "review_applied", "signed", "superseded"]
    assert trail[:3] == json.loads(signed_json)["audit"]  # the signed trail, closed, not rewritten
    assert [a["hash"] for a in read_anchor(kept) or []] == [e["hash"] for e in trail]
    assert (kept / "versions" / "v1" / "report.json").is_file() and (kept / "cells.parquet").is_file()
    first = new["audit"][0]
    assert first["action"] == "screened"
    assert first["details"]["supersedes"] == {"folder": f"superseded/{kept.name}", "version": 1, "status": "signed",
                                              "reviewer": "AB", "trail_head": trail[-1]["hash"]}  # fmt: skip
    assert "screened again over version 1 (signed, AB)" in (out / "report.html").read_text()
    res = CliRunner().invoke(main, ["review", "verify", str(out)])
    assert res.exit_code == 0, res.output


def test_run_rescreen_archives_a_reviewed_field(tmp_path: Path) -> None:
    """A real `run` of one field, reviewed and signed, then run again: refused, then --rescreen."""
    field = tmp_path / "field_01.jpg"
    shutil.copy(CASE / "field_01.jpg", field)
    out = tmp_path / "out"
    args = ["run", str(field), "--mpp", "0.0862", "-o", str(out), "--device", "cpu"]
    runner = CliRunner()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "field_01" / "report.json").read_text())
    signed = _sign(out / "field_01", report, tmp_path)
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and "holds version 1 signed by AB" in res.output
    assert json.loads((out / "field_01" / "report.json").read_text())["signoff"] == signed["signoff"]
    res = runner.invoke(main, [*args, "--rescreen"])
    assert res.exit_code == 0, res.output
    now = json.loads((out / "field_01" / "report.json").read_text())
    assert "signoff" not in now and now["audit"][0]["details"]["supersedes"]["version"] == 1
    (kept,) = (out / "field_01" / "superseded").iterdir()
    assert json.loads((kept / "report.json").read_text())["signoff"] == signed["signoff"]
