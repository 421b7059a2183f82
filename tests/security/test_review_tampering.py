# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
"""`review apply` writes through no link, notices a shortened audit trail, and trusts no swapped table."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))

from _fake import fake_calls  # noqa: E402
from _fake import write_fake_report  # noqa: E402

from wsi_screen.cli import main  # noqa: E402
from wsi_screen.reports import review as review_module  # noqa: E402
from wsi_screen.reports import review_guard  # noqa: E402
from wsi_screen.reports.audit_anchor import ANCHOR_NAME  # noqa: E402
from wsi_screen.reports.corrections import ReviewError  # noqa: E402
from wsi_screen.reports.corrections import screening_of  # noqa: E402
from wsi_screen.reports.corrections_items import MAX_ITEMS  # noqa: E402
from wsi_screen.reports.review import apply_review  # noqa: E402

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


@pytest.fixture
def screened(tmp_path: Path) -> tuple[Path, dict]:
    src = tmp_path / "field.png"
    src.write_bytes(b"input bytes")
    calls, _ = fake_calls(24, 1200, 900, seed=5, classes=MODEL8)
    out = tmp_path / "OUT" / "field"
    return out, write_fake_report(out, src, calls=calls)


def _corrections(path: Path, report: dict, items: list, *, screening: bool = True, **extra: object) -> Path:
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "corrections": items, **extra}  # fmt: skip
    if screening:
        doc["screening"] = screening_of(report)
    path.write_text(json.dumps(doc))
    return path


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _apply(out: Path, corr: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(corr), *args])
    assert "Traceback" not in res.output
    return res.exit_code, res.output


def _signed(out: Path, report: dict, tmp_path: Path) -> Path:
    """Sign version 1 (one reclassification); return the corrections file."""
    corr = _corrections(tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}])
    code, output = _apply(out, corr, "--reviewer", "AB", "--sign")
    assert code == 0, output
    return corr


# ---- item 6: no write through a link inside the report folder -------------------------------------


@pytest.mark.parametrize("link", ["versions", "versions/v1", ANCHOR_NAME])
def test_signing_never_writes_through_a_link(screened, tmp_path: Path, link: str) -> None:
    out, report = screened
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(
        elsewhere if link != ANCHOR_NAME else elsewhere / "anchor", target_is_directory=link != ANCHOR_NAME
    )
    before = _snapshot(out)
    corr = _corrections(tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}])
    code, output = _apply(out, corr, "--reviewer", "AB", "--sign")
    assert code == 2 and "symbolic link" in output and "nothing applied" in output, output
    assert len(output.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []
    assert _snapshot(out) == before  # refused before anything was written


# ---- item 7: the trail cannot lose events unnoticed ------------------------------------------------


def test_a_dropped_signature_is_named(screened, tmp_path: Path) -> None:
    out, report = screened
    corr = _signed(out, report, tmp_path)
    doc = json.loads((out / "report.json").read_text())
    assert [e["action"] for e in doc["audit"]] == ["screened", "review_applied", "signed"]
    doc["audit"] = doc["audit"][:2]
    doc["signoff"] = {**doc["signoff"], "status": "draft"}
    (out / "report.json").write_text(json.dumps(doc))
    before = _snapshot(out)
    code, output = _apply(out, corr, "--reviewer", "CD")
    assert code == 2, output
    assert "audit trail ends at event 2" in output and "event 3 (signed, version 1" in output
    assert _snapshot(out) == before
    # without the anchor, the frozen version still names the missing signature
    (out / ANCHOR_NAME).unlink()
    code, output = _apply(out, corr, "--reviewer", "CD")
    assert code == 2 and "v1: signed version 1 has no 'signed' event" in output, output


def test_a_deleted_trail_is_not_a_fresh_draft(screened, tmp_path: Path) -> None:
    out, report = screened
    corr = _signed(out, report, tmp_path)
    doc = json.loads((out / "report.json").read_text())
    for key in ("audit", "signoff", "review"):
        doc.pop(key)
    (out / "report.json").write_text(json.dumps(doc))
    for p in (out / "versions" / "v1").iterdir():
        p.chmod(0o644)
        p.unlink()
    (out / "versions" / "v1").rmdir()
    (out / "versions").rmdir()
    code, output = _apply(out, corr, "--reviewer", "CD")
    assert code == 2, output
    assert "has no audit trail, but audit-anchor.jsonl records 3 event(s)" in output
    assert "the audit trail was removed" in output
    res = CliRunner().invoke(main, ["review", "verify", str(out)])
    assert res.exit_code == 2 and "the audit trail was removed" in res.output


def test_a_draft_marked_signed_is_refused(screened, tmp_path: Path) -> None:
    out, report = screened
    corr = _corrections(tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}])
    assert _apply(out, corr, "--reviewer", "AB")[0] == 0
    doc = json.loads((out / "report.json").read_text())
    doc["signoff"]["status"] = "signed"
    (out / "report.json").write_text(json.dumps(doc))
    code, output = _apply(out, corr, "--reviewer", "AB")
    assert code == 2 and "'signoff' says version 1 signed, the audit trail version 1 draft" in output


@pytest.mark.parametrize("frozen", [False, True])
def test_a_signing_killed_midway_is_completed_by_the_next_review(
    screened, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frozen: bool
) -> None:
    out, report = screened
    real = review_module.finish_signing

    def killed(report_dir: Path, new: dict, files: dict) -> list:
        if frozen:
            real(report_dir, new, files)  # the version folder is in place, its event not yet written
        raise KeyboardInterrupt

    monkeypatch.setattr(review_module, "finish_signing", killed)
    corr = _corrections(tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}])
    with pytest.raises(KeyboardInterrupt):
        apply_review(out, corr, reviewer="AB", sign=True)
    monkeypatch.undo()
    assert (out / "versions" / "v1").is_dir() == frozen
    res = CliRunner().invoke(main, ["review", "verify", str(out)])
    assert res.exit_code == 2 and "the signing of version 1 did not finish" in res.output
    c2 = _corrections(tmp_path / "c2.json", report, [{"kind": "reclassify", "cell_id": 1, "class": "EBO"}])
    new = apply_review(out, c2, reviewer="CD")
    assert [(e["action"], e["version"]) for e in new["audit"]] == [
        ("screened", 0), ("review_applied", 1), ("signed", 1), ("review_applied", 2)
    ]  # fmt: skip
    assert new["signoff"]["amends"] == 1
    res = CliRunner().invoke(main, ["review", "verify", str(out)])
    assert (
        res.exit_code == 0
        and "audit trail intact (4 event(s), version 2 draft; signed versions: v1)" in res.output
    )


def test_a_new_screening_starts_a_new_trail_and_keeps_the_old_signatures(screened, tmp_path: Path) -> None:
    out, report = screened
    _signed(out, report, tmp_path)
    signed_before = (out / "versions" / "v1" / "report.json").read_bytes()
    calls, _ = fake_calls(24, 1200, 900, seed=6, classes=MODEL8)
    again = write_fake_report(out, tmp_path / "field.png", calls=calls)  # `run` into the same folder
    kept = list((out / "superseded").glob("*/versions/v1/report.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == signed_before
    assert kept[0].parent.parent.parent.joinpath(ANCHOR_NAME).is_file()
    assert not (out / "versions").exists() and not (out / ANCHOR_NAME).exists()
    c2 = _corrections(tmp_path / "c2.json", again, [{"kind": "reclassify", "cell_id": 2, "class": "EBO"}])
    code, output = _apply(out, c2, "--reviewer", "CD", "--sign")
    assert code == 0, output
    assert json.loads((out / "versions" / "v1" / "report.json").read_text())["signoff"]["reviewer"] == "CD"


# ---- item 9: the cells table, ids of another screening, the size of a review ----------------------


def _swap_table(out: Path) -> None:
    """Put another screening's table (every cell a blast) beside report.json."""
    frame = pl.read_parquet(out / "cells.parquet")
    frame.with_columns(pl.lit("BLA").alias("predicted_class")).write_parquet(out / "cells.parquet")


def test_a_swapped_cells_table_is_refused(screened, tmp_path: Path) -> None:
    out, report = screened
    assert report["cells_table"]["sha256"] and report["cells_table"]["rows"] == 24
    _swap_table(out)
    corr = _corrections(tmp_path / "c.json", report, [])
    code, output = _apply(out, corr)
    assert code == 2 and "cells.parquet: not the cells table of report.json" in output, output
    assert json.loads((out / "report.json").read_text())["blast"] == report["blast"]


def test_a_report_without_the_record_is_checked_by_its_figures(screened, tmp_path: Path) -> None:
    out, report = screened
    doc = json.loads((out / "report.json").read_text())
    doc.pop("cells_table")
    (out / "report.json").write_text(json.dumps(doc))
    original = (out / "cells.parquet").read_bytes()
    _swap_table(out)
    corr = _corrections(tmp_path / "c.json", report, [])
    code, output = _apply(out, corr)
    assert code == 2 and "not the cells table of report.json" in output and "BLA" in output, output
    (out / "cells.parquet").write_bytes(original)
    new = apply_review(out, corr)  # the table it was made from: accepted, and the record written
    assert (
        new["cells_table"]["sha256"] == json.loads((out / "report.json").read_text())["cells_table"]["sha256"]
    )


def test_without_a_screening_record_ids_need_their_positions(screened, tmp_path: Path) -> None:
    out, report = screened
    frame = pl.read_parquet(out / "cells.parquet")
    x, y = float(frame["x"][3]), float(frame["y"][3])
    before = _snapshot(out)
    for item, message in (
        ({"kind": "reclassify", "cell_id": 3, "class": "EBO"}, "cell 3 without its 'x' and 'y'"),
        ({"kind": "remove", "cell_id": 3, "reason": "duplicate", "x": x + 40, "y": y}, "cell 3 is at"),
    ):
        corr = _corrections(tmp_path / "c.json", report, [item], screening=False)
        with pytest.raises(ReviewError, match="another screening") as e:
            apply_review(out, corr)
        assert message in str(e.value)
    assert _snapshot(out) == before
    ok = {"kind": "reclassify", "cell_id": 3, "class": "EBO", "x": round(x, 1), "y": round(y, 1)}
    new = apply_review(out, _corrections(tmp_path / "c.json", report, [ok], screening=False))
    assert new["differential"]["EBO"]["count"] == 1


def test_a_hundred_thousand_added_cells_are_refused(screened, tmp_path: Path) -> None:
    out, report = screened
    items = [
        {"kind": "add", "x": 10.0 + i % 1000, "y": 10.0 + i // 1000, "class": "EBO"} for i in range(100_000)
    ]
    before = _snapshot(out)
    code, output = _apply(out, _corrections(tmp_path / "c.json", report, items))
    assert code == 2 and f"100,000 corrections; at most {MAX_ITEMS:,} allowed" in output, output
    assert _snapshot(out) == before


def test_a_review_that_would_leave_an_unreviewable_report_is_refused(
    screened, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, report = screened
    monkeypatch.setattr(review_guard, "MAX_REPORT_JSON_BYTES", review_guard.REVIEW_MARGIN_BYTES + 150_000)
    items = [
        {"kind": "add", "x": 10.0 + i, "y": 20.0, "class": "EBO", "comment": "c" * 100} for i in range(400)
    ]
    before = _snapshot(out)
    with pytest.raises(
        ReviewError, match=r"report\.json: the reviewed report would be .* keeps it reviewable"
    ):
        apply_review(out, _corrections(tmp_path / "c.json", report, items))
    assert _snapshot(out) == before


# ---- item 12 (one point): repeated corrections are one warning line -------------------------------


def test_repeated_corrections_are_summarised(
    screened, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, report = screened
    items = [
        {"kind": "reclassify", "cell_id": i % 3, "class": ("EBO", "LYT")[i % 2]} for i in range(MAX_ITEMS)
    ]
    with caplog.at_level(logging.WARNING):
        apply_review(out, _corrections(tmp_path / "c.json", report, items))
    lines = [r.getMessage() for r in caplog.records if "corrected before" in r.getMessage()]
    assert len(lines) == 1
    assert f"{MAX_ITEMS - 3} correction(s) name a cell corrected before (cells 0, 1, 2, 0, 1 …)" in lines[0]
