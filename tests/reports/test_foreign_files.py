"""`review apply` rewrites only files wsi-screen wrote: a foreign index.html or summary.csv in the
parent folder is left byte for byte as it was (issue 16's finding)."""

from __future__ import annotations

import json

from _fake import fake_calls
from _fake import write_fake_report
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.corrections import screening_of
from wsi_screen.reports.index import write_index_html

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


def _screened(tmp_path):
    src = tmp_path / "field.png"
    src.write_bytes(b"input bytes")
    calls, _ = fake_calls(30, 800, 600, seed=3, classes=MODEL8)
    out = tmp_path / "OUT" / "field"
    report = write_fake_report(out, src, calls=calls)
    corr = tmp_path / "c.json"
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "corrections": [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}]}  # fmt: skip
    corr.write_text(json.dumps(doc))
    return out, corr


def test_a_foreign_index_and_summary_are_left_alone(tmp_path):
    out, corr = _screened(tmp_path)
    index = out.parent / "index.html"
    index.write_text("<html><body>my own notes</body></html>")
    summary = out.parent / "summary.csv"
    summary.write_text("patient,result\nP1,field/report.json\n")
    before = (index.read_bytes(), summary.read_bytes())
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(corr), "--reviewer", "AB"])
    assert res.exit_code == 0, res.output
    assert (index.read_bytes(), summary.read_bytes()) == before
    assert "index.html was not written by wsi-screen" in res.output
    assert "summary.csv was not written by wsi-screen" in res.output
    assert json.loads((out / "report.json").read_text())["differential"]["EBO"]["count"] == 1


def test_our_index_is_refreshed(tmp_path):
    out, corr = _screened(tmp_path)
    write_index_html(out.parent)
    index = out.parent / "index.html"
    assert '<meta name="generator" content="wsi-screen">' in index.read_text()
    index.write_text(index.read_text().replace("</body>", "<!-- stale --></body>"))
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(corr), "--reviewer", "AB"])
    assert res.exit_code == 0, res.output
    assert "<!-- stale -->" not in index.read_text() and "not written by wsi-screen" not in res.output
