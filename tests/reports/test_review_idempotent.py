"""`review apply` states end states: the page's export applied twice is applied once; `review sign` signs as is.

Also: the corrections example of docs/reports.md is what `review apply` reads (the test parses it
out of the document), and the page gives each added cell a stable id (review_state.js run in node).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _fake import CLASSES
from _fake import write_fake_report
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.corrections import screening_of
from wsi_screen.reports.html_report import static_text
from wsi_screen.reports.review import apply_review
from wsi_screen.reports.review import review_report
from wsi_screen.reports.review import sign_review
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reports.md"


@pytest.fixture
def field(tmp_path: Path) -> tuple[Path, dict]:
    """20 cells, 0-1 BLA, 5 NGS, 2-4 and 6-19 LYT: blasts 2/20 = 10 %."""
    labels = ["BLA", "BLA", "LYT", "LYT", "LYT", "NGS"] + ["LYT"] * 14
    probs = np.full((20, len(CLASSES)), 0.1 / (len(CLASSES) - 1), np.float32)
    for i, lab in enumerate(labels):
        probs[i, CLASSES.index(lab)] = 0.9
    cells = tuple(
        Cell(i, "f", 100.0 + 90 * i, 300.0, (60 + 90 * i, 260, 140 + 90 * i, 340), 1.0, "fake")
        for i in range(20)
    )
    src = tmp_path / "field.png"
    src.write_bytes(b"an idempotent input")
    out = tmp_path / "OUT" / "field"
    report = write_fake_report(out, src, size=(2000, 600), calls=CellCalls(cells, probs, CLASSES, "fake"))
    return out, report


def _export(path: Path, report: dict, items: list, **extra: object) -> Path:
    """A corrections file as the page exports it (format 2, the screening record)."""
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "reviewer": "AB", "corrections": items, **extra}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


PAGE_ITEMS = [
    {"kind": "reclassify", "cell_id": 2, "class": "BLA", "predicted": "LYT"},
    {"kind": "remove", "cell_id": 0, "reason": "duplicate", "predicted": "BLA"},
    {"kind": "add", "add_id": "a0f3c2-1", "x": 600.0, "y": 300.0, "class": "PLM"},
]


def _state(out: Path) -> tuple[dict, pl.DataFrame, list[str]]:
    report = json.loads((out / "report.json").read_text())
    versions = sorted(p.name for p in (out / "versions").iterdir()) if (out / "versions").is_dir() else []
    return report, pl.read_parquet(out / "cells.parquet"), versions


def test_the_page_export_applied_twice_is_applied_once(field, tmp_path: Path) -> None:
    out, report = field
    corr = _export(tmp_path / "corrections.json", report, PAGE_ITEMS)
    first = apply_review(out, corr)
    assert first["cells_detected"] == 20  # 20 - 1 removed + 1 added
    assert first["review"]["n_corrections"] == 3
    r1, t1, v1 = _state(out)
    bytes1 = (out / "report.json").read_bytes()
    again = review_report(out, corr)
    assert not again.changed and again.cells_changed == 0
    r2, t2, v2 = _state(out)
    assert (out / "report.json").read_bytes() == bytes1  # no new version written
    assert t2.height == t1.height == 21 and t2["added_id"].drop_nulls().to_list() == ["a0f3c2-1"]
    for key in ("cells_detected", "cells_counted", "differential", "blast", "flags"):
        assert r2[key] == r1[key]
    assert r2["signoff"]["version"] == r1["signoff"]["version"] == 1 and v1 == v2 == []


def test_apply_then_apply_with_sign_signs_the_counts_of_one_apply(field, tmp_path: Path) -> None:
    """The morning of issue 34: the same export applied, then again with --sign, signed one PLM."""
    out, report = field
    corr = _export(tmp_path / "corrections.json", report, PAGE_ITEMS)
    runner = CliRunner()
    res = runner.invoke(main, ["review", "apply", str(out), str(corr)])
    assert res.exit_code == 0, res.output
    assert "3 correction(s) in" in res.output and "(3 cell(s) changed now)" in res.output
    once = json.loads((out / "report.json").read_text())
    res = runner.invoke(main, ["review", "apply", str(out), str(corr), "--sign", "--reviewer", "AB"])
    assert res.exit_code == 0, res.output
    assert "(0 cell(s) changed now)" in res.output and "version 2 signed by AB" in res.output
    signed = json.loads((out / "versions" / "v2" / "report.json").read_text())
    for key in ("cells_detected", "cells_counted", "differential", "blast"):
        assert signed[key] == once[key]
    frozen = pl.read_parquet(out / "versions" / "v2" / "cells.parquet")
    assert frozen.filter(pl.col("origin") == "reviewer").height == 1
    res = runner.invoke(main, ["review", "apply", str(out), str(corr), "--sign", "--reviewer", "AB"])
    assert res.exit_code == 0 and "0 cells changed" in res.output and "nothing written" in res.output
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["v2"]


def test_an_added_cell_without_an_id_is_found_by_its_position(field, tmp_path: Path) -> None:
    out, report = field
    add = {"kind": "add", "x": 600.0, "y": 300.0, "class": "PLM"}
    corr = _export(tmp_path / "hand.json", report, [add, {**add, "x": 600.4}])  # the same cell twice
    apply_review(out, corr)
    apply_review(out, _export(tmp_path / "hand2.json", report, [{**add, "class": "EBO", "y": 300.6}]))
    frame = pl.read_parquet(out / "cells.parquet")
    added = frame.filter(pl.col("origin") == "reviewer")
    assert added.height == 1 and added["reviewed_class"].to_list() == ["EBO"]  # its end state


def test_review_sign_signs_what_is_there(field, tmp_path: Path) -> None:
    out, report = field
    runner = CliRunner()
    res = runner.invoke(main, ["review", "sign", str(out)])
    assert res.exit_code == 2 and "--reviewer" in res.output  # who signs is required
    res = runner.invoke(main, ["review", "sign", str(out), "--reviewer", "AB", "--comment", "as screened"])
    assert res.exit_code == 0, res.output
    assert "version 1 signed by AB" in res.output
    now = json.loads((out / "report.json").read_text())
    assert now["signoff"]["status"] == "signed" and now["signoff"]["comment"] == "as screened"
    assert now["blast"] == report["blast"] and now["review"]["n_corrections"] == 0
    assert [e["action"] for e in now["audit"]] == ["screened", "review_applied", "signed"]
    res = runner.invoke(main, ["review", "sign", str(out), "--reviewer", "AB"])
    assert res.exit_code == 0 and "already; nothing written" in res.output
    # a draft on top of the signed version, then signed as it stands: the next version, no cell changed
    apply_review(out, _export(tmp_path / "c.json", report, PAGE_ITEMS[:1]))
    outcome = sign_review(out, reviewer="CD")
    assert outcome.changed and outcome.cells_changed == 0
    assert (outcome.report["signoff"]["version"], outcome.report["signoff"]["status"]) == (3, "signed")
    assert outcome.report["blast"]["count"] == 3  # the draft's figures, signed
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["v1", "v3"]
    res = runner.invoke(main, ["review", "verify", str(out)])
    assert res.exit_code == 0 and "signed versions: v1, v3" in res.output, res.output


def _doc_example() -> dict:
    """The corrections example of docs/reports.md, as printed there."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r'```json\n(\{"format": "wsi-screen-corrections".*?)```', text, re.S)
    assert block, "docs/reports.md has no corrections example"
    return json.loads(block.group(1))


def test_the_documented_corrections_example_is_accepted(field, tmp_path: Path) -> None:
    out, report = field
    doc = _doc_example()
    assert doc["version"] == 2 and {i["kind"] for i in doc["corrections"]} == {"reclassify", "remove", "add"}
    doc["input_sha256"] = report["input"]["sha256"]  # the placeholders of the example, this report's values
    doc["screening"] = screening_of(report)
    for item in doc["corrections"]:
        if "cell_id" in item:
            item["cell_id"] = {12: 3, 5: 5}[item["cell_id"]]  # cell 3 is a LYT, cell 5 an NGS here
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    new = apply_review(out, tmp_path / "doc.json")
    kinds = sorted(c["kind"] for c in new["review"]["corrections"])
    assert kinds == ["added", "reclassified", "removed"]
    # the kinds of items are read by what they say, whatever the version (1 was what the doc once said)
    doc["version"] = 1
    (tmp_path / "doc1.json").write_text(json.dumps(doc))
    assert not review_report(out, tmp_path / "doc1.json").changed  # the same end state


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed: the page's review state is checked in Chromium")
def test_the_page_gives_added_cells_a_stable_id(tmp_path: Path) -> None:
    data = {
        "cells": {"id": [0, 7], "x": [1, 2], "y": [1, 2], "pred": [0, -1], "rev": [None, "PLM"],
                  "removed": [None, None], "origin": ["model", "reviewer"], "comment": [None, None],
                  "aid": [None, "a-applied"], "counted": [True, True], "conf": [1, 1], "pb": [0, 0],
                  "pc": [1, 1]},
        "classes": ["LYT"], "review_classes": ["LYT", "PLM"], "rules": {}, "storage_key": "k",
        "input": "x", "input_sha256": "s", "model_qc": {},
    }  # fmt: skip
    script = str(
        "var store = {}; var localStorage = {getItem: function (k) { return store[k] || null; },"
        " setItem: function (k, v) { store[k] = v; }};\n"
        + str(static_text("review_state.js"))
        + "\nvar data = "
        + json.dumps(data)
        + ";\nvar a = WsiReview.create(data, {}); a.addCell(10, 20, 'PLM'); a.addCell(30, 40, 'LYT'); a.save();"
        "\nvar ids = a.exportDoc().corrections.map(function (i) { return i.add_id; });"
        "\nvar b = WsiReview.create(data, {}); b.restore();"
        "\nvar again = b.exportDoc().corrections.map(function (i) { return i.add_id; });"
        "\nvar saved = JSON.parse(store['wsi-screen:k']); saved.added[0].add_id = 'a-applied';"
        " store['wsi-screen:k'] = JSON.stringify(saved);"
        "\nvar c = WsiReview.create(data, {}); c.restore();"
        "\nconsole.log(JSON.stringify({ids: ids, again: again, left: c.added().length}));"
    )
    (tmp_path / "t.js").write_text(script)
    run = subprocess.run(
        [NODE, str(tmp_path / "t.js")], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert len(set(got["ids"])) == 2 and all(isinstance(i, str) and i for i in got["ids"])
    assert got["again"] == got["ids"]  # kept across a reload
    assert got["left"] == 1  # an added cell already in the report is not added again
