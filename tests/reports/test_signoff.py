# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
"""Sign-off: `review apply --sign` freezes a version, later reviews make new versions, edits show."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from _fake import fake_calls
from _fake import write_fake_report
from _fixtures import chromium  # noqa: F401 - pytest fixture
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import screening_of
from wsi_screen.reports.pdf import pdf_page_count
from wsi_screen.reports.review import apply_review

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


@pytest.fixture
def screened(tmp_path):
    src = tmp_path / "field.png"
    src.write_bytes(b"input bytes")
    calls, _ = fake_calls(40, 2452, 2056, seed=5, classes=MODEL8)
    out = tmp_path / "OUT" / "field"
    report = write_fake_report(out, src, calls=calls)
    return out, report


def _corrections(path, report, items, **extra):
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "corrections": items, **extra}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sign_freezes_a_version_and_a_new_review_makes_the_next(screened, tmp_path):
    out, report = screened
    items = [{"kind": "reclassify", "cell_id": 0, "class": "EBO", "comment": "erythroblast"},
             {"kind": "reclassify", "cell_id": 1, "class": "EBO"}, {"kind": "reclassify", "cell_id": 2, "class": "EBO"},
             {"kind": "reclassify", "cell_id": 3, "class": "PLM"}, {"kind": "remove", "cell_id": 4, "reason": "duplicate"}]  # fmt: skip
    c1 = _corrections(tmp_path / "c1.json", report, items, reviewer="AB", comment="signed case")
    r1 = apply_review(out, c1, sign=True)
    assert r1["signoff"] == {"version": 1, "status": "signed", "reviewer": "AB", "at": r1["signoff"]["at"],
                             "comment": "signed case", "amends": None}  # fmt: skip
    assert r1["differential"]["EBO"]["count"] == 3 and r1["me_ratio"]["status"] == "assessed"
    assert [e["action"] for e in r1["audit"]] == ["screened", "review_applied", "signed"]
    check_trail(r1["audit"], where="r1")
    changes = r1["audit"][1]["details"]["changes"]
    assert {"cell_id": 0, "kind": "reclassified", "from": report["differential"] and changes[0]["from"],
            "to": "EBO", "comment": "erythroblast"} == changes[0]  # fmt: skip
    frozen = out / "versions" / "v1"
    assert sorted(p.name for p in frozen.iterdir()) == ["cells.parquet", "report.html", "report.json"]
    for p in frozen.iterdir():
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert r1["audit"][2]["details"]["files"][p.name] == _sha(p)
    signed_json = json.loads((frozen / "report.json").read_text())
    assert signed_json["signoff"]["status"] == "signed" and signed_json["differential"] == r1["differential"]
    before = _snapshot(frozen)
    # a later review: a new draft version that names the signed one; the signed files stay as they were
    c2 = _corrections(
        tmp_path / "c2.json", report, [{"kind": "reclassify", "cell_id": 5, "class": "HAC"}], reviewer="CD"
    )
    r2 = apply_review(out, c2)
    assert (r2["signoff"]["version"], r2["signoff"]["status"], r2["signoff"]["amends"]) == (2, "draft", 1)
    assert [e["action"] for e in r2["audit"]] == ["screened", "review_applied", "signed", "review_applied"]
    assert r2["audit"][:3] == r1["audit"]
    assert r2["differential"]["EBO"]["count"] == 3 and r2["differential"]["HAC"]["count"] == 1  # merged
    assert _snapshot(frozen) == before
    html = (out / "report.html").read_text()
    assert "draft reviewed by CD" in html and "amends signed version 1" in html


def test_altered_trail_or_signed_version_is_refused(screened, tmp_path):
    out, report = screened
    c = _corrections(
        tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}], reviewer="AB"
    )
    apply_review(out, c, sign=True)
    doc = json.loads((out / "report.json").read_text())
    doc["audit"][1]["who"] = "someone else"
    (out / "report.json").write_text(json.dumps(doc))
    before = _snapshot(out)
    with pytest.raises(ReviewError, match=r"audit trail altered at event 2"):
        apply_review(out, c)
    assert _snapshot(out) == before
    doc["audit"][1]["who"] = "AB"
    (out / "report.json").write_text(json.dumps(doc))
    frozen = out / "versions" / "v1" / "report.json"
    frozen.chmod(0o644)
    frozen.write_text(frozen.read_text().replace('"EBO"', '"LYT"'))
    with pytest.raises(ReviewError, match=r"v1/report\.json: changed after it was signed"):
        apply_review(out, c)


def test_signing_needs_a_reviewer_and_the_cli_says_what_it_did(screened, tmp_path):
    out, report = screened
    c = _corrections(tmp_path / "c.json", report, [{"kind": "add", "x": 100.0, "y": 200.0, "class": "EBO"}])
    before = _snapshot(out)
    with pytest.raises(ReviewError, match="signing needs a reviewer"):
        apply_review(out, c, sign=True)
    assert _snapshot(out) == before
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(c), "--reviewer", "AB", "--sign"])
    assert res.exit_code == 0, res.output
    assert "version 1 signed by AB" in res.output
    new = json.loads((out / "report.json").read_text())
    assert new["cells_detected"] == report["cells_detected"] + 1
    assert new["review"]["corrections"][-1]["kind"] == "added"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"kind": "add", "x": -1, "y": 5, "class": "EBO"},
            "must be pixel positions inside the 2452 x 2056 image",
        ),
        (
            {"kind": "remove", "cell_id": 1, "reason": "ugly"},
            "reason 'ugly' is not one of duplicate, not_a_cell",
        ),
        ({"kind": "split", "cell_id": 1}, "unknown kind 'split'"),
        (
            {"kind": "reclassify", "cell_id": 1, "class": "XYZ"},
            "unknown class code(s) 'XYZ'; a reviewer may assign ART",
        ),
        ({"kind": "comment", "cell_id": 1, "comment": 7}, "'comment' must be text"),
    ],
)
def test_bad_v2_items_name_the_file(screened, tmp_path, item, message):
    out, report = screened
    c = _corrections(tmp_path / "bad.json", report, [item])
    with pytest.raises(ReviewError, match=r"bad\.json") as e:
        apply_review(out, c)
    assert message in str(e.value)


def test_pdf_of_the_summary_is_one_page(screened, tmp_path, chromium):
    out, report = screened
    c = _corrections(tmp_path / "c.json", report, [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}])
    apply_review(out, c, reviewer="AB", sign=True)
    res = CliRunner().invoke(main, ["report", "pdf", str(out), "--chromium", chromium])
    assert res.exit_code == 0, res.output
    pdf = out / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf_page_count(pdf) == 1
    assert "1 page" in res.output
    missing = CliRunner().invoke(
        main, ["report", "pdf", str(out), "--chromium", str(tmp_path / "no-such-chromium")]
    )
    assert missing.exit_code == 2 and "Chromium" in missing.output


def _fake_chromium(tmp_path, body: str):
    """A stand-in Chromium: a shell script that gets the real command line (--print-to-pdf=FILE)."""
    script = tmp_path / "fake-chromium"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in --print-to-pdf=*) out="${a#--print-to-pdf=}";; esac; done\n'
        f"{body}\n"
    )
    script.chmod(0o755)
    return script


def test_pdf_retries_a_chromium_that_hangs(tmp_path):
    from wsi_screen.reports.pdf import PdfError
    from wsi_screen.reports.pdf import print_pdf

    html = tmp_path / "report.html"
    html.write_text("<html><body>x</body></html>")
    state = tmp_path / "runs"
    # first run hangs without writing; the second prints
    hangs_once = _fake_chromium(
        tmp_path,
        f'echo x >> {state}; if [ "$(wc -l < {state})" -eq 1 ]; then sleep 30; fi\n'
        'printf "%%PDF-1.4\\n1 0 obj <<>>\\n%%%%EOF\\n" > "$out"',
    )
    pdf = print_pdf(html, tmp_path / "a.pdf", chromium=str(hangs_once), timeout_s=2)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert state.read_text().count("x") == 2
    # a run that writes its whole PDF and then hangs keeps that PDF, without a second run
    state.unlink()
    prints_then_hangs = _fake_chromium(
        tmp_path, f'echo x >> {state}; printf "%%PDF-1.4\\n%%%%EOF\\n" > "$out"; sleep 30'
    )
    assert print_pdf(html, tmp_path / "b.pdf", chromium=str(prints_then_hangs), timeout_s=2).is_file()
    assert state.read_text().count("x") == 1
    # always hanging: a clear error after the tries, and no file left behind
    always = _fake_chromium(tmp_path, "sleep 30")
    with pytest.raises(PdfError, match=r"report\.html: Chromium could not print the page in 2 tries"):
        print_pdf(html, tmp_path / "c.pdf", chromium=str(always), timeout_s=1)
    assert not (tmp_path / "c.pdf").exists()
    assert not list(tmp_path.glob(".c.pdf*"))
