# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
"""The review a morphologist does in the page, in headless Chromium, against `review apply`.

The page is driven as a reviewer would (keys on crops, the class picker, clicks in the viewer);
its live figures (aggregate.js) must be the figures `wsi-screen review apply` then writes.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import pytest
from _browser import run_chromium
from _fake import fake_calls
from _fake import write_fake_report
from _fixtures import chromium  # noqa: F401 - pytest fixture

from wsi_screen.reports.review import apply_review

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")
FIGURES = ("cells_detected", "cells_counted", "differential", "excluded", "histogram", "me_ratio")
PROB_KEYS = ("percent_prob", "expected_count_prob")  # sums of float32 probabilities: float64 in the page


RAF_BY_TIMER = (
    "window.requestAnimationFrame = function (cb) { return setTimeout(function () { cb(performance.now()); }, 16); };"
    "window.cancelAnimationFrame = function (h) { clearTimeout(h); };"
)


def probe_page(binary: str, report_dir: Path, script: str, tmp: Path, name: str) -> dict:
    """Run ``script`` (which sets ``out`` and calls ``done()``) in a copy of report.html beside the original."""
    page = report_dir / f"{name}.html"  # beside report.html, so viewer/ resolves
    probe = (
        "<script>(function () { var out = {}; function done() { document.body.setAttribute('data-probe', JSON.stringify(out)); }\n"
        + script
        + "\n})();</script></body>"
    )
    text = (report_dir / "report.html").read_text(encoding="utf-8").replace("</body>", probe)
    # headless Chromium's virtual time runs timers but hardly any animation frame: drive frames by timer
    text = text.replace("<head>", "<head><script>" + RAF_BY_TIMER + "</script>", 1)
    page.write_text(text, encoding="utf-8")
    try:
        run = run_chromium(binary, page, tmp / f"profile-{name}", virtual_time_ms=20000, timeout_s=120)
        dom, console = run.dom, run.console
    finally:
        page.unlink()
    assert console == [], console
    assert "data-js-errors" not in dom, "the page raised a script error"
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "probe did not finish"
    return json.loads(htmllib.unescape(m.group(1)))


def assert_same_figures(live: dict, report: dict) -> None:
    """The page's live summary equals report.json's figures (probability sums to 0.002)."""
    for key in FIGURES:
        assert live[key] == report[key], key
    assert live["flags"] == report["flags"]
    blast_live = {k: v for k, v in live["blast"].items() if k not in PROB_KEYS}
    blast_rep = {k: v for k, v in report["blast"].items() if k not in PROB_KEYS}
    assert blast_live == blast_rep
    for k in PROB_KEYS:
        a, b = live["blast"].get(k), report["blast"].get(k)
        assert (a is None) == (b is None) and (a is None or abs(a - b) <= 0.002), (k, a, b)
    qc_keys = ("cells_detected", "cells_counted", "count_adequate", "artefact_fraction", "not_identifiable_fraction",
               "classes_not_covered", "low_confidence_fraction", "mean_confidence")  # fmt: skip
    assert {k: live["qc"][k] for k in qc_keys} == {k: report["qc"][k] for k in qc_keys}


# Drives the page: reclassify three crops to EBO by typing the code, one to PLM with the class
# picker (search "plasma"), mark one duplicate (D) and one not a cell (X), then add a missed cell by
# clicking in the viewer in add mode and picking EBO. Records the live summary and the export.
REVIEW = r"""
var page = window.wsiPage, crops = Array.prototype.slice.call(document.querySelectorAll("#galleries figure.crop"));
function key(el, k) { el.dispatchEvent(new KeyboardEvent("keydown", {key: k, bubbles: true, cancelable: true})); }
var picked = [], used = {};
crops.forEach(function (c) { if (!used[c.dataset.id] && picked.length < 6) { used[c.dataset.id] = 1; picked.push(c); } });
for (var k = 0; k < 3; k++) { picked[k].focus(); key(picked[k], "E"); key(picked[k], "B"); key(picked[k], "O"); }
picked[3].focus(); key(picked[3], "/");
var search = document.getElementById("picker-search");
search.value = "plasma"; search.dispatchEvent(new Event("input"));
out.pickerShows = Array.prototype.map.call(document.querySelectorAll("#picker-list li"), function (li) { return li.dataset.code; });
search.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
picked[4].focus(); key(picked[4], "D");
picked[5].focus(); key(picked[5], "X");
out.ids = picked.map(function (c) { return Number(c.dataset.id); });
out.tags = picked.map(function (c) { return c.querySelector(".tag").textContent; });
out.legend = document.querySelectorAll("#legend button.chip").length;
var tries = 0;
(function waitViewer() {
  var box = document.getElementById("viewer");
  if (box.dataset.ready !== "1") { if (tries++ < 200) return setTimeout(waitViewer, 50); out.viewer = "not ready"; return done(); }
  out.viewer = "ready";
  document.getElementById("add-cell").click();
  window.scrollTo(0, 0);  // a constructed PointerEvent's pageY ignores scrolling (a real click's does not)
  var v = page.viewer, p = v.imagePoint(ADD_X, ADD_Y), rect = v.osd.canvas.getBoundingClientRect();
  var opts = {bubbles: true, cancelable: true, clientX: rect.left + p.x, clientY: rect.top + p.y, pointerId: 1,
              pointerType: "mouse", isPrimary: true, button: 0, buttons: 1};
  var target = v.osd.canvas;
  target.dispatchEvent(new PointerEvent("pointerdown", opts));
  target.dispatchEvent(new PointerEvent("pointerup", Object.assign({}, opts, {buttons: 0})));
  setTimeout(function () {
    out.pickerOpenForAdd = !document.getElementById("class-picker").hidden;
    search.value = "EBO"; search.dispatchEvent(new Event("input"));
    search.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
    out.added = page.review.added();
    out.marks = v.marks();
    out.live = page.review.summary();
    out.flagsShown = Array.prototype.map.call(document.querySelectorAll("#flags tbody tr"), function (tr) { return tr.dataset.flag + ":" + tr.querySelector(".status").textContent; });
    out.ebsRow = (document.querySelector('#differential tr[data-code="EBO"] td.count') || {}).textContent;
    out.primary = document.getElementById("primary-blast").textContent;
    var parts = null, RealBlob = window.Blob;
    window.Blob = function (p, o) { parts = p; return new RealBlob(p, o); };
    HTMLAnchorElement.prototype.click = function () {};
    document.getElementById("reviewer").value = "Dr Test"; document.getElementById("reviewer").dispatchEvent(new Event("change"));
    document.getElementById("case-comment").value = "erythroid cells found on review";
    document.getElementById("case-comment").dispatchEvent(new Event("change"));
    document.getElementById("export").click();
    out.doc = JSON.parse(parts[0]);
    done();
  }, 400);
})();
"""

AT_LOAD = r"""
out.live = window.wsiPage.review.summary();
out.changes = window.wsiPage.review.changes();
out.signoff = document.getElementById("signoff").textContent;
out.audit = document.querySelectorAll("#audit tbody tr").length;
done();
"""


@pytest.fixture
def screened(tmp_path):
    src = tmp_path / "field_01.png"
    src.write_bytes(b"a held-out field, for its sha256")
    calls, _ = fake_calls(60, 2452, 2056, seed=7, classes=MODEL8)
    out = tmp_path / "OUT" / "field_01"
    report = write_fake_report(out, src, calls=calls)
    return out, report


def test_live_figures_are_those_review_apply_writes(screened, chromium, tmp_path):
    out, report = screened
    assert (out / "viewer" / "viewer.json").exists()
    add = (1226.0, 1028.0)
    script = REVIEW.replace("ADD_X", str(add[0])).replace("ADD_Y", str(add[1]))
    probe = probe_page(chromium, out, script, tmp_path, "probe_review")
    assert probe["viewer"] == "ready"
    assert probe["tags"][:4] == ["EBO", "EBO", "EBO", "PLM"]
    assert probe["tags"][4].endswith("duplicate") and probe["tags"][5].endswith("not a cell")
    assert probe["pickerShows"] == ["PLM"]  # "plasma" finds the plasma cell, a class the model lacks
    assert probe["legend"] == 21
    assert probe["pickerOpenForAdd"]
    assert len(probe["added"]) == 1 and probe["added"][0]["cls"] == "EBO"
    assert abs(probe["added"][0]["x"] - add[0]) < 3 and abs(probe["added"][0]["y"] - add[1]) < 3
    assert probe["marks"] == report["cells_detected"] + 1
    live = probe["live"]
    assert live["differential"]["EBO"]["count"] == 4 and live["differential"]["PLM"]["count"] == 1
    assert live["me_ratio"]["status"] == "assessed"
    assert probe["ebsRow"] == "4"
    assert live["cells_detected"] == report["cells_detected"] - 2 + 1
    assert "of " + str(live["cells_counted"]) + " counted cells" in probe["primary"]
    doc = probe["doc"]
    assert (doc["version"], doc["reviewer"], doc["comment"]) == (
        2,
        "Dr Test",
        "erythroid cells found on review",
    )
    assert sorted(c["kind"] for c in doc["corrections"]) == ["add", "reclassify", "reclassify", "reclassify",
                                                              "reclassify", "remove", "remove"]  # fmt: skip
    corrections = tmp_path / "corrections.json"
    corrections.write_text(json.dumps(doc))
    new = apply_review(out, corrections)
    assert_same_figures(live, new)
    assert (
        new["review"]["reviewer"] == "Dr Test"
        and new["review"]["comment"] == "erythroid cells found on review"
    )
    assert new["review"]["classes_reviewer_only"] == ["EBO", "PLM"]
    assert new["review"]["original"]["cells_detected"] == report["cells_detected"]
    # the re-rendered page starts from the review: same figures, nothing pending
    again = probe_page(chromium, out, AT_LOAD, tmp_path, "probe_load")
    assert again["changes"] == 0
    assert_same_figures(again["live"], new)
    assert "draft" in again["signoff"] and again["audit"] == 2


VIEWER = r"""
var tries = 0, levels = [], failed = 0, urls = {};
(function wait() {
  var page = window.wsiPage, box = document.getElementById("viewer");
  if (!page.viewer || box.dataset.ready !== "1") { if (tries++ < 200) return setTimeout(wait, 50); out.ready = false; return done(); }
  var osd = page.viewer.osd;
  osd.addHandler("tile-loaded", function (e) { levels.push(e.tile.level); urls[String(e.tile.getUrl ? e.tile.getUrl() : e.tile.url).split("/")[0]] = 1; });
  osd.addHandler("tile-load-failed", function () { failed += 1; });
  out.ready = true;
  out.homeZoom = osd.viewport.viewportToImageZoom(osd.viewport.getZoom(true));
  out.marks = page.viewer.marks();
  page.viewer.zoomTo(CELL_X, CELL_Y);
  setTimeout(function () {
    out.zoom = osd.viewport.viewportToImageZoom(osd.viewport.getZoom(true));
    var c = osd.viewport.viewportToImageCoordinates(osd.viewport.getCenter(true));
    out.centre = [c.x, c.y];
    out.maxLevel = Math.max.apply(null, levels.concat([-1]));
    out.failed = failed;
    out.schemes = Object.keys(urls);
    window.wsiPage.legend = null;
    var chip = document.querySelector('#legend button.chip[data-code="BLA"]');
    chip.click();
    out.hiddenAfterFilter = document.querySelectorAll(".viewer-marks path.c-BLA.filtered").length;
    out.bla = document.querySelectorAll(".viewer-marks path.c-BLA").length;
    done();
  }, 3000);
})();
"""


def test_viewer_opens_offline_zooms_to_native_resolution_and_filters(screened, chromium, tmp_path):
    out, report = screened
    dz = json.loads((out / "viewer" / "viewer.json").read_text())
    frame_x, frame_y = 1000.0, 900.0
    probe = probe_page(
        chromium,
        out,
        VIEWER.replace("CELL_X", str(frame_x)).replace("CELL_Y", str(frame_y)),
        tmp_path,
        "probe_viewer",
    )
    assert probe["ready"]
    assert probe["marks"] == report["cells_detected"]
    assert probe["homeZoom"] < 0.5  # the whole field fits first
    assert probe["zoom"] >= 1.0  # at least one screen pixel per image pixel
    assert abs(probe["centre"][0] - frame_x) < 5 and abs(probe["centre"][1] - frame_y) < 5
    assert probe["maxLevel"] == dz["levels"] - 1  # the full-resolution level was loaded
    assert probe["failed"] == 0
    assert probe["schemes"] == ["viewer"]  # relative: the tiles beside the page (file://), no network
    assert probe["bla"] > 0 and probe["hiddenAfterFilter"] == probe["bla"]


def test_cells_outside_counted_regions_stay_out_of_live_and_applied_figures(screened, chromium, tmp_path):
    """A slide's cells in excluded regions (cells.parquet ``counted`` false) count neither live nor applied."""
    import polars as pl

    out, report = screened
    frame = pl.read_parquet(out / "cells.parquet")
    keep = [i % 4 != 0 for i in range(frame.height)]
    frame.with_columns(pl.Series("counted", keep), pl.Series("region", [0] * frame.height)).write_parquet(
        out / "cells.parquet"
    )
    # the table now is what a slide's screening writes: its record in report.json follows it
    import hashlib

    on_disk = json.loads((out / "report.json").read_text())
    on_disk["cells_table"]["sha256"] = hashlib.sha256((out / "cells.parquet").read_bytes()).hexdigest()
    (out / "report.json").write_text(json.dumps(on_disk))
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "corrections": []}  # fmt: skip
    (tmp_path / "none.json").write_text(json.dumps(doc))
    new = apply_review(out, tmp_path / "none.json")
    assert new["cells_detected"] == sum(keep) < report["cells_detected"]
    probe = probe_page(chromium, out, AT_LOAD, tmp_path, "probe_counted")
    assert_same_figures(probe["live"], new)
