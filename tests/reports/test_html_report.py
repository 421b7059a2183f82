# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _browser import run_chromium
from _fake import write_fake_report
from _fixtures import chromium  # noqa: F401 - pytest fixture
from _fixtures import fake_out  # noqa: F401 - pytest fixture

from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.assets import read_assets
from wsi_screen.reports.corrections import screening_of
from wsi_screen.reports.html_report import render_report_html

SECTIONS = (
    "header",
    "toolbar",
    "flags",
    "review-queue",
    "differential",
    "histogram",
    "galleries",
    "qc",
    "overview",
    "summary",
    "viewer-section",
    "audit",
)
EVIL = "<img src=x onerror=alert(1)>"


def test_report_has_sections_and_no_network(fake_out):
    out, report = fake_out
    html = (out / "report.html").read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'id="{sid}"' in html, sid
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html
    assert "data:image/jpeg;base64," in html
    assert (out / "cells.geojson").exists()
    assert (out / "report_assets.json").exists()


def test_file_name_is_escaped(fake_out):
    out, _ = fake_out
    html = (out / "report.html").read_text(encoding="utf-8")
    assert EVIL not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;.png" in html


def test_metadata_cannot_break_out(fake_out):
    out, report = fake_out
    bad = json.loads(json.dumps(report))
    bad["input"]["path"] = "/x/</script><script>alert(1)</script>.png"
    bad["detector"]["name"] = "<b onmouseover=alert(2)>det</b>"
    bad["warnings"] = ["<script>alert(3)</script>"]
    html = render_report_html(
        bad, pl.read_parquet(out / "cells.parquet"), read_assets(out / "report_assets.json")
    )
    assert html.count("<script") == 3  # the two JSON data blocks and the page script only
    assert "<b onmouseover" not in html
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(data)["input"] == bad["input"]["path"]
    data = re.search(r'<script type="application/json" id="screening-data">(.*?)</script>', html, re.S).group(
        1
    )
    assert json.loads(data)["detector"]["name"] == bad["detector"]["name"]


def test_gallery_and_queue_caps(tmp_path):
    from _fake import write_fake_report

    src = tmp_path / "slide.tiff"
    src.write_bytes(b"x")
    opts = ReportOptions(gallery_max_per_class=3, review_queue_max=5, crop_px=48)
    write_fake_report(tmp_path / "o", src, n_cells=300, options=opts, seed=2)
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    queue = html.split('id="review-queue"')[1].split("</section>")[0]
    assert 0 < queue.count('<figure class="crop') <= 5
    for gallery in re.findall(r'<details class="gallery".*?</details>', html, re.S):
        assert gallery.count('<figure class="crop') <= 3
    assert len(read_assets(tmp_path / "o" / "report_assets.json").crops) <= 5 + 3 * 21


def test_review_queue_puts_blast_boundary_first(fake_out):
    from wsi_screen.reports.html_report import aggregate_config
    from wsi_screen.reports.selection import blast_probability
    from wsi_screen.reports.selection import prob_matrix
    from wsi_screen.reports.selection import review_queue

    out, report = fake_out
    frame = pl.read_parquet(out / "cells.parquet")
    cfg = aggregate_config(report)
    queue = review_queue(frame, report, cfg, limit=10)
    pb = blast_probability(prob_matrix(frame, report["model"]["classes"]), report["model"]["classes"], cfg)
    first = queue[0]
    row = frame["cell_id"].to_list().index(first.cell_id)
    assert 0.15 <= pb[row] <= 0.85 or "hairy" in first.reason
    assert [q.priority for q in queue] == sorted((q.priority for q in queue), reverse=True)
    assert np.isfinite([q.priority for q in queue]).all()


def test_report_in_headless_chromium(fake_out, chromium, tmp_path):
    out, report = fake_out
    page = run_chromium(chromium, out / "report.html", tmp_path / "profile")
    assert page.console == [], page.console
    assert 'data-ready="1"' in page.dom, "page script did not finish"
    assert "data-js-errors" not in page.dom
    for sid in SECTIONS:
        assert f'id="{sid}"' in page.dom, sid
    assert (
        len(re.findall(r'<button[^>]*class="chip"', page.dom)) == 21
    )  # the legend: every class, always shown
    assert (out / "viewer" / "openseadragon.min.js").exists()
    assert (out / "viewer" / "LICENSE-openseadragon.txt").exists()
    shot = tmp_path / "report.png"  # look at it by hand when changing the template; never committed
    run_chromium(chromium, out / "report.html", tmp_path / "profile2", screenshot=shot)
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("reviewed", [False, True])
def test_index_html(fake_out, tmp_path, chromium, reviewed):
    from wsi_screen.reports.index import write_index_html
    from wsi_screen.types import Failure

    out, report = fake_out
    rep = dict(report, review={"n": 1}) if reviewed else report
    fail = Failure("/data/<b>bad</b>.svs", "read", "InputError", "truncated <file>")
    path = write_index_html(tmp_path, [(out, rep), (out, rep)], failures=[fail])
    html = path.read_text(encoding="utf-8")
    assert html.count('href="') == 2
    assert "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E" not in html
    assert "<b>bad</b>" not in html
    assert EVIL not in html
    assert f"{Path(out.name) / 'report.html'}" in html or "evil/report.html" in html
    page = run_chromium(chromium, path, tmp_path / "profile")
    assert page.console == []
    assert 'data-ready="1"' in page.dom


def test_index_scans_out_folder(fake_out):
    from wsi_screen.reports.index import write_index_html

    out, _ = fake_out
    html = write_index_html(out.parent).read_text(encoding="utf-8")
    assert 'href="evil/report.html"' in html


PROBE = """<script>
(function () {
  var out = {}, crop = document.querySelector("#galleries figure.crop"), id = crop.dataset.id;
  function key(k) { crop.dispatchEvent(new KeyboardEvent("keydown", {key: k, bubbles: true})); }
  crop.focus(); key("2");
  out.afterDigit = crop.querySelector(".tag").textContent;
  out.count1 = document.getElementById("corr-count").textContent;
  key("N"); key("G"); key("S");
  out.afterCode = crop.querySelector(".tag").textContent;
  var parts = null;
  var RealBlob = window.Blob;
  window.Blob = function (p, o) { parts = p; return new RealBlob(p, o); };
  HTMLAnchorElement.prototype.click = function () { out.download = this.download; };  // no file saved
  document.getElementById("export").click();
  out.exported = JSON.parse(parts[0]).corrections;
  out.doc = JSON.parse(parts[0]);
  out.id = Number(id);
  key("Backspace");
  out.count0 = document.getElementById("corr-count").textContent;
  crop.click();
  out.panel = document.querySelector("#cell-panel .cp-title").textContent;
  out.located = crop.classList.contains("located");
  key("ArrowRight");
  out.moved = document.activeElement !== crop && document.activeElement.matches("figure.crop");
  document.activeElement.blur();
  var down = new KeyboardEvent("keydown", {key: "ArrowDown", bubbles: true, cancelable: true});
  document.body.dispatchEvent(down);
  out.arrowScrolls = !down.defaultPrevented && !document.activeElement.matches("figure.crop");
  document.body.setAttribute("data-probe", JSON.stringify(out));
})();
</script></body>"""


def test_review_keyboard_export_and_locate(fake_out, chromium, tmp_path):
    import html as htmllib

    out, report = fake_out
    page = tmp_path / "probe.html"
    page.write_text(
        (out / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8"
    )
    run = run_chromium(chromium, page, tmp_path / "profile")
    assert run.console == [], run.console
    probe = json.loads(htmllib.unescape(re.search(r'data-probe="([^"]*)"', run.dom).group(1)))
    classes = report["model"]["classes"]
    assert probe["afterDigit"] == classes[1]
    assert probe["count1"] == "1 correction"
    assert probe["afterCode"] == "NGS"
    assert probe["exported"] == [
        {
            "kind": "reclassify",
            "cell_id": probe["id"],
            "class": "NGS",
            "predicted": probe["exported"][0]["predicted"],
        }
    ]
    doc = probe["doc"]
    assert (doc["format"], doc["version"], doc["input_sha256"]) == (
        "wsi-screen-corrections",
        2,
        report["input"]["sha256"],
    )
    assert doc["screening"] == screening_of(json.loads((out / "report.json").read_text()))
    assert probe["count0"] == "0 corrections"
    assert probe["download"] == "corrections.json"
    assert probe["panel"] == f"cell {probe['id']}"
    assert probe["located"]
    assert probe["moved"]
    assert probe["arrowScrolls"]  # with no crop focused, arrow keys scroll the page


def test_input_without_cells(tmp_path, chromium):
    from _fake import CLASSES

    from wsi_screen.types import CellCalls

    src = tmp_path / "blank.png"
    src.write_bytes(b"blank")
    empty = CellCalls((), np.zeros((0, len(CLASSES)), np.float32), CLASSES, "fake")
    report = write_fake_report(tmp_path / "o", src, calls=empty)
    assert report["cells_detected"] == 0
    page = run_chromium(chromium, tmp_path / "o" / "report.html", tmp_path / "profile")
    assert page.console == []
    assert 'data-ready="1"' in page.dom
    assert 'data-cells="0"' in page.dom
