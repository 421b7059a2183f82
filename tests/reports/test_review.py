from __future__ import annotations

import contextlib
import hashlib
import json
import re

import numpy as np
import polars as pl
import pytest
from _fake import CLASSES
from _fake import write_fake_report
from click.testing import CliRunner

from wsi_screen.config import AggregateConfig
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import WsiScreenError
from wsi_screen.reports.corrections import ReviewError
from wsi_screen.reports.corrections import screening_of
from wsi_screen.reports.review import apply_review
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls


def _status(report, name):
    return next(f["status"] for f in report["flags"] if f["name"] == name)


@pytest.fixture
def hand_made(tmp_path):
    """20 cells: 0-1 BLA, 2-19 LYT, all called with probability 0.9 -> blasts 2/20 = 10 %.

    Cut-offs 1 % and 25 %, so that 20 cells decide something: 10 % (95 % CI 2.8-30.1) raises the
    1 % flag and leaves 25 % indeterminate.
    """
    probs = np.full((20, len(CLASSES)), 0.1 / (len(CLASSES) - 1), np.float32)
    labels = ["BLA", "BLA"] + ["LYT"] * 18
    for i, lab in enumerate(labels):
        probs[i, CLASSES.index(lab)] = 0.9
    cells = tuple(
        Cell(i, "f", 100.0 + 90 * i, 300.0, (60 + 90 * i, 260, 140 + 90 * i, 340), 1.0, "fake")
        for i in range(20)
    )
    src = tmp_path / "field.png"
    src.write_bytes(b"fake input")
    out = tmp_path / "OUT" / "field"
    cfg = ScreenConfig(aggregate=AggregateConfig(blast_cutoffs_percent=(1.0, 25.0)))
    calls = CellCalls(cells, probs, CLASSES, "fake")
    report = write_fake_report(out, src, size=(2000, 600), calls=calls, cfg=cfg)
    assert report["blast"]["percent"] == 10.0
    assert _status(report, "blasts_ge_1pct") == "raised"
    assert _status(report, "blasts_ge_25pct") == "indeterminate"
    return out, report


SHA = hashlib.sha256(b"fake input").hexdigest()  # of the hand_made input


def _write(path, corrections, **extra):
    doc = {"format": "wsi-screen-corrections", "version": 1, "input_sha256": SHA, "corrections": corrections}
    # the screening the page exports (a file without it must give each cell's x, y); none for a
    # report folder a test broke on purpose
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        doc["screening"] = screening_of(
            json.loads((path.parent / "OUT" / "field" / "report.json").read_text())
        )
    path.write_text(json.dumps({**doc, **extra}))
    return path


def test_apply_recomputes_counts_and_flags(hand_made, tmp_path):
    out, before = hand_made
    corr = _write(
        tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}, {"cell_id": 5, "class": "ART"}], reviewer="AB"
    )
    new = apply_review(out, corr)
    assert new["cells_counted"] == 19
    assert new["cells_detected"] == 20
    assert new["differential"]["BLA"]["count"] == 1
    assert new["differential"]["LYT"]["count"] == 18
    assert new["excluded"]["ART"]["count"] == 1
    assert new["blast"]["percent"] == pytest.approx(100 / 19, abs=1e-3)
    assert new["blast"]["percent_prob"] == pytest.approx(
        100 * (0.9 + 17 * 0.005) / (1 + 18 * 0.98), abs=2e-3
    )  # reviewed cells one-hot
    # 1 of 19 (5.3 %, 95 % CI 0.9-24.6): 1 % no longer decided, 25 % now ruled out
    assert _status(new, "blasts_ge_1pct") == "indeterminate"
    assert _status(new, "blasts_ge_25pct") == "not_raised"
    rv = new["review"]
    assert rv["reviewer"] == "AB"
    assert rv["n_corrections"] == 2
    assert rv["blast_percent_before"] == 10.0
    assert {"name": "blasts_ge_1pct", "from": "raised", "to": "indeterminate"} in rv["flags_changed"]
    assert {"name": "blasts_ge_25pct", "from": "indeterminate", "to": "not_raised"} in rv["flags_changed"]
    assert rv["original"]["blast"]["percent"] == 10.0
    assert rv["original"]["cells_counted"] == 20
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["blast"]["percent"] == new["blast"]["percent"]
    frame = pl.read_parquet(out / "cells.parquet")
    assert frame["predicted_class"].to_list()[:2] == ["BLA", "BLA"]  # model calls kept
    assert frame["reviewed_class"].to_list()[:6] == ["LYT", None, None, None, None, "ART"]
    html = (out / "report.html").read_text()
    assert 'id="review-info"' in html
    assert "2 correction(s) by AB" in html


def test_reapply_merges_and_reverts(hand_made, tmp_path):
    out, _ = hand_made
    apply_review(
        out, _write(tmp_path / "a.json", [{"cell_id": 0, "class": "LYT"}, {"cell_id": 5, "class": "ART"}])
    )
    new = apply_review(out, _write(tmp_path / "b.json", [{"cell_id": 0, "class": "BLA"}]), reviewer="CD")
    assert new["review"]["n_corrections"] == 1
    assert new["review"]["corrections"][0]["cell_id"] == 5
    assert new["blast"]["count"] == 2
    assert new["cells_counted"] == 19
    assert new["review"]["original"]["blast"]["percent"] == 10.0  # always the model's figures
    assert new["review"]["reviewer"] == "CD"


def test_applying_the_same_file_again_states_the_same_change_and_qc_keeps_model_confidence(
    hand_made, tmp_path
):
    out, before = hand_made
    corr = _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}, {"cell_id": 5, "class": "ART"}])
    first = apply_review(out, corr)
    again = apply_review(out, corr)
    for key in ("blast_percent_before", "flags_changed", "n_corrections"):
        assert again["review"][key] == first["review"][key]
    assert again["review"]["blast_percent_before"] == 10.0  # the model's, not the first review's
    for key in ("mean_confidence", "low_confidence_fraction"):  # reviewed cells are not "certain"
        assert again["qc"][key] == before["qc"][key]


@pytest.mark.parametrize(
    ("corrections", "message"),
    [
        ([{"cell_id": 99, "class": "LYT"}], "unknown cell id(s) 99"),
        ([{"cell_id": 1, "class": "XYZ"}], "unknown class code(s) 'XYZ'"),
        ([{"cell_id": "1", "class": "LYT"}], "unknown cell id(s) '1'"),
        ([{"cell": 1}], "must be an object with 'cell_id' and 'class'"),
        ({"not": "a list"}, "expected a JSON object with a 'corrections' list"),
    ],
)
def test_invalid_corrections_name_the_file(hand_made, tmp_path, corrections, message):
    out, _ = hand_made
    path = _write(tmp_path / "bad.json", corrections)
    with pytest.raises(ReviewError, match="bad.json") as e:
        apply_review(out, path)
    assert message in str(e.value)
    assert "review" not in json.loads((out / "report.json").read_text())  # nothing written


def test_corrections_for_another_input(hand_made, tmp_path):
    out, _ = hand_made
    path = _write(tmp_path / "other.json", [{"cell_id": 1, "class": "LYT"}], input_sha256="f" * 64)
    with pytest.raises(ReviewError, match="another input"):
        apply_review(out, path)


def test_cli_review_apply(hand_made, tmp_path):
    from wsi_screen.cli import main
    from wsi_screen.reports.index import write_index_html

    out, _ = hand_made
    write_index_html(out.parent)
    good = _write(tmp_path / "c.json", [{"cell_id": 1, "class": "PMO"}])
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(good), "--reviewer", "EF"])
    assert res.exit_code == 0, res.output
    assert "blasts 10.0 % -> 5.0 %" in res.output
    assert "blasts_ge_25pct: indeterminate -> not_raised" in res.output
    assert "yes" in (out.parent / "index.html").read_text()
    bad = _write(tmp_path / "x.json", [{"cell_id": 1, "class": "nope"}])
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(bad)])
    assert res.exit_code == 2
    assert "x.json" in res.output


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failure_after_building_leaves_the_folder_unchanged(hand_made, tmp_path):
    out, report = hand_made
    (out / "report_assets.json").write_text("{not json")  # read only after the cells were rebuilt
    before = _snapshot(out)
    corr = _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}])
    with pytest.raises(WsiScreenError, match="report_assets.json"):
        apply_review(out, corr)
    assert _snapshot(out) == before  # nothing half-applied, no temp file left


def test_interrupted_write_never_leaves_reviewed_cells_beside_the_old_report(
    hand_made, tmp_path, monkeypatch
):
    import wsi_screen.reports.review_files as review

    out, _ = hand_made
    before = _snapshot(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(review, "write_report_html", killed)  # after cells.parquet and cells.geojson
    with pytest.raises(KeyboardInterrupt):
        apply_review(out, _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}]))
    assert _snapshot(out) == before


def _edit_report(out, edit):
    path = out / "report.json"
    report = json.loads(path.read_text())
    path.write_text(json.dumps(edit(report)))


def _edit_cells(out, edit):
    path = out / "cells.parquet"
    edit(pl.read_parquet(path)).write_parquet(path)


@pytest.mark.parametrize(
    ("edit_report", "edit_cells", "message"),
    [
        (lambda r: [r], None, "expected a JSON object"),
        (lambda r: {k: v for k, v in r.items() if k != "model"}, None, "'model' is a required property"),
        (lambda r: {**r, "model": {**r["model"], "classes": "BLA"}}, None, "at model/classes"),
        (lambda r: {**r, "flags": "none"}, None, "at flags"),
        (lambda r: {**r, "input": []}, None, "at input"),
        (lambda r: {**r, "config": {**r["config"], "aggregate": 5}}, None, "aggregate must be a table"),
        (None, lambda f: f.drop("predicted_class"), "column(s) predicted_class missing"),
        (None, lambda f: f.drop("prob_LYT"), "column(s) prob_LYT missing"),
        (None, lambda f: f.with_columns(pl.col("cell_id").cast(pl.String)), "cell_id must be integer"),
        (None, lambda f: f.with_columns(pl.lit(None, pl.Float64).alias("x")), "column x has empty values"),
        (None, lambda f: f.with_columns(pl.lit("1").alias("y")), "column y must be numeric"),
        (None, lambda f: f.with_columns(pl.lit(0, pl.Int64).alias("cell_id")), "cell ids are not unique"),
        (None, lambda f: f.with_columns(pl.lit("ZZZ").alias("reviewed_class")), "class(es) ZZZ"),
    ],
)
def test_malformed_report_folder_is_a_review_error(hand_made, tmp_path, edit_report, edit_cells, message):
    out, _ = hand_made
    if edit_report:
        _edit_report(out, edit_report)
    if edit_cells:
        _edit_cells(out, edit_cells)
    before = _snapshot(out)
    corr = _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}])
    with pytest.raises(ReviewError, match="report.json" if edit_report else "cells.parquet") as e:
        apply_review(out, corr)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert _snapshot(out) == before


def test_malformed_corrections_sha_is_a_review_error(hand_made, tmp_path):
    out, _ = hand_made
    with pytest.raises(ReviewError, match=r"c.json: 'input_sha256' must be a string"):
        apply_review(out, _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}], input_sha256=123))


def test_cli_malformed_report_exits_2_without_traceback(hand_made, tmp_path):
    from wsi_screen.cli import main

    out, _ = hand_made
    _edit_report(out, lambda r: {**r, "blast": None})
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(_write(tmp_path / "c.json", []))])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert "report.json" in res.output
    assert "at blast" in res.output
    assert "Traceback" not in res.output


def _page_screening(html: str) -> dict:
    """The screening block report.html exports with its corrections."""
    block = re.search(r'<script type="application/json" id="screening-data">(.*?)</script>', html, re.S)
    assert block, "report.html has no screening-data block"
    return json.loads(block.group(1))


def test_page_records_the_screening_that_review_checks(hand_made):
    out, report = hand_made
    on_disk = json.loads((out / "report.json").read_text())
    assert _page_screening((out / "report.html").read_text()) == screening_of(on_disk)
    assert screening_of(on_disk)["mpp"] == report["input"]["mpp"]
    script = (out / "report.html").read_text()
    assert "screening: screening" in script  # the export carries it


def test_export_as_the_page_writes_it_is_applied_and_survives_a_review(hand_made, tmp_path):
    out, _ = hand_made
    screening = _page_screening((out / "report.html").read_text())
    first = [{"cell_id": 0, "class": "LYT", "predicted": "BLA"}]
    apply_review(out, _write(tmp_path / "a.json", first, screening=screening))
    screening = _page_screening((out / "report.html").read_text())  # the re-rendered page
    second = [
        {"cell_id": 0, "class": "LYT", "predicted": "BLA"},
        {"cell_id": 4, "class": "BLA", "predicted": "LYT"},
    ]
    new = apply_review(out, _write(tmp_path / "b.json", second, screening=screening))
    assert new["review"]["n_corrections"] == 2


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": None}, "not a corrections file exported from report.html"),
        ({"format": "other-tool"}, "not a corrections file exported from report.html"),
        ({"version": 3}, "version 3 is not supported"),
        ({"input_sha256": None}, "'input_sha256' must be a string (the sha256 of the screened input)"),
        ({"screening": "x"}, "'screening' must be an object"),
    ],
)
def test_corrections_without_the_format_marker_or_input_sha_are_refused(hand_made, tmp_path, doc, message):
    out, _ = hand_made
    path = _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}])
    content = {k: v for k, v in {**json.loads(path.read_text()), **doc}.items() if v is not None}
    path.write_text(json.dumps(content))
    before = _snapshot(out)
    with pytest.raises(ReviewError, match=r"c\.json: ") as e:
        apply_review(out, path)
    assert message in str(e.value)
    assert _snapshot(out) == before


def test_bare_list_is_refused(hand_made, tmp_path):
    out, _ = hand_made
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"cell_id": 0, "class": "LYT"}]))
    with pytest.raises(ReviewError, match=r"c\.json: not a corrections file"):
        apply_review(out, path)


def test_correction_whose_predicted_class_differs_is_refused(hand_made, tmp_path):
    out, _ = hand_made  # cells 0-1 predicted BLA, 2-19 LYT
    before = _snapshot(out)
    corr = [{"cell_id": 0, "class": "LYT", "predicted": "BLA"}, {"cell_id": 3, "class": "BLA", "predicted": "PMO"},
            {"cell_id": 4, "class": "BLA", "predicted": "MON"}]  # fmt: skip
    with pytest.raises(ReviewError) as e:
        apply_review(out, _write(tmp_path / "old.json", corr))
    text = str(e.value)
    assert "old.json" in text
    assert "cell 3 was predicted PMO" in text
    assert "this report predicts LYT" in text
    assert "another screening" in text
    assert "\n" not in text
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mpp", 100.0, "pixel size (um/px) 100.0, this report 0.0862"),
        ("model_sha256", "1" * 64, "model sha256"),
        ("detector", {"name": "yolo", "params": {}}, "detector"),
        ("generated_at", "2020-01-01T00:00:00+00:00", "report generated at 2020-01-01"),
    ],
)
def test_corrections_from_another_screening_are_refused(hand_made, tmp_path, field, value, message):
    out, _ = hand_made
    screening = {**_page_screening((out / "report.html").read_text()), field: value}
    before = _snapshot(out)
    corr = _write(
        tmp_path / "c.json", [{"cell_id": 0, "class": "LYT", "predicted": "BLA"}], screening=screening
    )
    with pytest.raises(ReviewError, match=r"c\.json: made on another screening of this input") as e:
        apply_review(out, corr)
    assert message in str(e.value)
    assert _snapshot(out) == before


def test_cli_refuses_corrections_of_another_screening_exit_2(hand_made, tmp_path):
    from wsi_screen.cli import main

    out, _ = hand_made
    before = _snapshot(out)
    corr = _write(tmp_path / "c.json", [{"cell_id": 5, "class": "BLA", "predicted": "ART"}])
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(corr)])
    assert res.exit_code == 2, res.output
    assert "c.json: cell 5 was predicted ART" in res.output
    assert "Traceback" not in res.output
    assert _snapshot(out) == before


def test_reviewed_page_does_not_restore_the_draft_of_the_page_before(hand_made, tmp_path):
    out, _ = hand_made

    def key() -> str:
        return re.search(r'"storage_key":\s*"([^"]*)"', (out / "report.html").read_text()).group(1)

    draft_key = key()
    new = apply_review(out, _write(tmp_path / "c.json", [{"cell_id": 0, "class": "LYT"}]), reviewer="QA")
    assert key() != draft_key and key().endswith(new["review"]["reviewed_at"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"reviewer": "A" * 10_000}, "at most 200"),
        ({"reviewer": "AB\x1b[31m"}, "control characters"),
    ],
)
def test_review_inputs_are_bounded(hand_made, tmp_path, doc, message):
    out, _ = hand_made
    path = _write(tmp_path / "c.json", [{"cell_id": 1, "class": "PMO"}], **doc)
    with pytest.raises(ReviewError, match=message):
        apply_review(out, path)
    with pytest.raises(ReviewError, match="at most 200"):
        apply_review(out, _write(tmp_path / "d.json", []), reviewer="B" * 201)


def test_deeply_nested_corrections_are_a_one_line_error(hand_made, tmp_path):
    from wsi_screen.cli import main

    out, _ = hand_made
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    res = CliRunner().invoke(main, ["review", "apply", str(out), str(deep)])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert "nested more than" in res.output and "Traceback" not in res.output


def test_version_2_adds_removes_and_reclassifies_to_scheme_classes(hand_made, tmp_path):
    out, before = hand_made
    items = [
        {"kind": "remove", "cell_id": 0, "reason": "duplicate"},
        {"kind": "remove", "cell_id": 1, "reason": "not_a_cell", "comment": "debris"},
        {"kind": "add", "x": 10.0, "y": 12.0, "class": "EBO"},
        {"kind": "reclassify", "cell_id": 2, "class": "MYB"},
    ]
    new = apply_review(out, _write(tmp_path / "c.json", items, version=2), reviewer="AB")
    assert new["cells_detected"] == before["cells_detected"] - 2 + 1
    assert new["differential"]["EBO"]["count"] == 1 and new["differential"]["MYB"]["count"] == 1
    assert new["review"]["classes_reviewer_only"] == []  # this model calls all 21 classes
    assert sorted(r["kind"] for r in new["review"]["corrections"]) == [
        "added",
        "reclassified",
        "removed",
        "removed",
    ]
    frame = pl.read_parquet(out / "cells.parquet")
    assert frame["removed"].to_list()[:2] == ["duplicate", "not_a_cell"]
    assert frame["origin"].to_list()[-1] == "reviewer" and frame.height == before["cells_detected"] + 1
    # reclassifying a removed cell restores it; the added cell can be removed like any other
    again = [{"kind": "reclassify", "cell_id": 0, "class": "LYT"}, {"kind": "remove", "cell_id": frame.height - 1, "reason": "duplicate"}]  # fmt: skip
    new = apply_review(out, _write(tmp_path / "d.json", again, version=2))
    assert new["cells_detected"] == before["cells_detected"] - 1
    assert new["differential"]["EBO"]["count"] == 0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"kind": "remove", "cell_id": 0, "reason": "ugly"},
            "reason 'ugly' is not one of duplicate, not_a_cell",
        ),
        ({"kind": "add", "x": "a", "y": 1, "class": "EBO"}, "'x' and 'y' must be pixel positions inside the"),
        ({"kind": "zap", "cell_id": 0}, "unknown kind 'zap'"),
        ({"kind": "reclassify", "cell_id": 0, "class": "LYT", "comment": "x" * 5000}, "at most 2000 allowed"),
    ],
)
def test_bad_version_2_items_are_refused(hand_made, tmp_path, item, message):
    out, _ = hand_made
    before = _snapshot(out)
    with pytest.raises(ReviewError, match="c.json") as e:
        apply_review(out, _write(tmp_path / "c.json", [item], version=2))
    assert message in str(e.value)
    assert _snapshot(out) == before


def test_long_reviewer_and_deep_json_get_one_line_errors(hand_made, tmp_path):
    out, _ = hand_made
    with pytest.raises(ReviewError, match="at most 200 allowed"):
        apply_review(out, _write(tmp_path / "c.json", [], reviewer="A" * 10_000))
    with pytest.raises(ReviewError, match="at most 200 allowed"):
        apply_review(out, _write(tmp_path / "c.json", []), reviewer="A" * 10_000)
    deep = tmp_path / "deep.json"
    deep.write_text(
        '{"format": "wsi-screen-corrections", "corrections": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(ReviewError, match="nested more than"):
        apply_review(out, deep)
