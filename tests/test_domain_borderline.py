"""The domain check's state on every surface, with a third state: ``borderline``.

Foreign blood fields scored 1.048, 0.993 and 1.057 against the threshold 1.0 as the detector and
``--mpp`` changed: a verdict that close (``aggregate.domain_margin``), or made on fewer cells than
the threshold was fitted on, decides no blast or hairy-cell flag. The console, summary.csv,
index.html, the field page (and so its PDF) and the case page show the state; the page shows an
in-domain input's score too.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "reports"))

from _fake import fake_calls  # noqa: E402
from _fake import write_fake_report  # noqa: E402

from wsi_screen.aggregate import summarize  # noqa: E402
from wsi_screen.batch.summary import SUMMARY_CSV  # noqa: E402
from wsi_screen.batch.summary import report_figures  # noqa: E402
from wsi_screen.config import AggregateConfig  # noqa: E402
from wsi_screen.config import ScreenConfig  # noqa: E402
from wsi_screen.domain_gate import domain_qc  # noqa: E402
from wsi_screen.errors import ConfigError  # noqa: E402
from wsi_screen.item_reports import InputOutcome  # noqa: E402
from wsi_screen.reports.html_report import static_text  # noqa: E402
from wsi_screen.reports.index import write_index_html  # noqa: E402
from wsi_screen.reports.rules import page_rules  # noqa: E402
from wsi_screen.types import CellCalls  # noqa: E402

CLASSES = ("ART", "BLA", "LYT", "NGS", "HAC")
MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


def _judged(score: float, n: int = 200, fitted: int = 30) -> dict:
    return {"status": "out_of_domain" if score > 1 else "in_domain", "score": score, "threshold": 1.0,
            "reasons": [], "n_cells": n, "fitted_on_cells": fitted, "signals": {}}  # fmt: skip


@pytest.mark.parametrize(
    ("score", "n", "status", "verdict"),
    [
        (1.048, 200, "borderline", "out_of_domain"),
        (0.993, 200, "borderline", "in_domain"),
        (1.057, 200, "borderline", "out_of_domain"),
        (1.5, 200, "out_of_domain", None),
        (0.62, 200, "in_domain", None),
        (0.4, 12, "borderline", "in_domain"),  # fewer cells than the threshold was fitted on
        (4.0, 6, "out_of_domain", None),  # far out of domain on few cells: stays out of domain
        (1.05, 6, "borderline", "out_of_domain"),
    ],
)
def test_a_verdict_near_its_threshold_or_on_few_cells_is_borderline(score, n, status, verdict) -> None:
    block = domain_qc(_judged(score, n), 0.1)
    assert block["status"] == status and block.get("verdict") == verdict and block["margin"] == 0.1
    if status == "borderline":
        assert block["reasons"], block
        assert domain_qc(block, 0.1) == block  # a reviewed report's block is kept as it is
    assert domain_qc(_judged(1.048), 0.0)["status"] == "out_of_domain"  # margin 0: two states only


def test_borderline_decides_no_gated_flag() -> None:
    labels = ["BLA"] * 30 + ["NGS"] * 70
    probs = np.eye(len(CLASSES), dtype=np.float32)[[CLASSES.index(c) for c in labels]]
    cfg = AggregateConfig(min_cells=50)
    plain = {f["name"]: f for f in summarize(labels, probs, CLASSES, cfg, _judged(0.62))["flags"]}
    near = summarize(labels, probs, CLASSES, cfg, _judged(1.048))
    flags = {f["name"]: f for f in near["flags"]}
    assert plain["blasts_ge_20pct"]["status"] == "raised"
    for name in ("blasts_ge_5pct", "blasts_ge_10pct", "blasts_ge_20pct", "hairy_cells"):
        assert flags[name]["status"] == "indeterminate", name
        assert flags[name]["message"].startswith("domain check borderline, not decided: score 1.048")
    assert flags["too_few_cells"] == plain["too_few_cells"]
    assert near["qc"]["domain"]["status"] == "borderline" and near["blast"]["percent"] == 30.0
    with pytest.raises(ConfigError, match=r"aggregate\.domain_margin"):
        AggregateConfig(domain_margin=5.0)
    assert ScreenConfig().to_dict()["aggregate"]["domain_margin"] == 0.1  # echoed into every report


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed: aggregate.js is checked in Chromium")
def test_the_page_gates_a_borderline_verdict_as_python_does(tmp_path: Path) -> None:
    labels = ["BLA"] * 30 + ["NGS"] * 70
    probs = np.eye(len(CLASSES), dtype=np.float32)[[CLASSES.index(c) for c in labels]]
    cfg = AggregateConfig(min_cells=50)
    py = summarize(labels, probs, CLASSES, cfg, _judged(1.048))
    cells = [{"label": c, "pb": float(c == "BLA"), "pc": float(c != "ART"), "conf": 1.0} for c in labels]
    script = (
        str(static_text("aggregate.js"))
        + f"\nvar s = WsiAggregate.summarize({json.dumps(cells)}, {json.dumps(CLASSES)}, {json.dumps(CLASSES)},"
        + f" {json.dumps(page_rules(cfg))}, {json.dumps(py['qc']['domain'])});"
        + "\nconsole.log(JSON.stringify(s.flags));"
    )
    (tmp_path / "a.js").write_text(script)
    run = subprocess.run(
        [NODE, str(tmp_path / "a.js")], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    got = {f["name"]: (f["status"], f["message"]) for f in json.loads(run.stdout)}
    assert got == {f["name"]: (f["status"], f["message"]) for f in py["flags"]}


@pytest.fixture
def judged_as(monkeypatch: pytest.MonkeyPatch):
    """Screen fake inputs whose domain judgement is the one given."""

    def screen(out: Path, judgement: dict, seed: int = 4) -> dict:
        monkeypatch.setattr(CellCalls, "judge_domain", lambda self: dict(judgement))
        src = out.parent / f"{out.name}.png"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(out.name.encode())
        calls, _ = fake_calls(60, 1200, 900, seed=seed, classes=MODEL8)
        return write_fake_report(out, src, calls=calls)

    return screen


def test_every_surface_shows_the_domain_state(judged_as, tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    near = judged_as(out / "near", _judged(1.048))
    far = judged_as(out / "far", _judged(1.9))
    fine = judged_as(out / "fine", _judged(0.62))
    assert [r["qc"]["domain"]["status"] for r in (near, far, fine)] == [
        "borderline",
        "out_of_domain",
        "in_domain",
    ]
    # console
    line = InputOutcome(Path("near.png"), out / "near", None, near, 1.0).summary_line
    assert line.startswith(
        "DOMAIN BORDERLINE, blast and hairy-cell flags not decided: borderline (score 1.05"
    )
    line = InputOutcome(Path("far.png"), out / "far", None, far, 1.0).summary_line
    assert line.startswith(
        "OUT OF DOMAIN, blast and hairy-cell flags not assessable: out of domain (score 1.90"
    )
    line = InputOutcome(Path("fine.png"), out / "fine", None, fine, 1.0).summary_line
    assert line.endswith("domain check: in domain (score 0.62 / 1.00 ± 0.1)")
    # summary.csv columns
    assert (report_figures(near)["domain"], report_figures(near)["domain_score"]) == ("borderline", 1.048)
    # the field page (its summary is what the PDF prints) and its banner
    page = (out / "near" / "report.html").read_text()
    assert 'id="domain-borderline"' in page
    assert 'class="domain borderline">borderline (score 1.05 / 1.00 ± 0.1, leaning out of domain)' in page
    banner = page[page.index('id="banner"') : page.index("</div>", page.index('id="banner"'))]
    assert "domain check borderline" in banner
    fine_page = (out / "fine" / "report.html").read_text()
    assert 'class="domain in_domain">in domain (score 0.62 / 1.00 ± 0.1)' in fine_page  # the score, shown
    # index.html: a mark next to the blast figure, never the bare bold figure
    index = write_index_html(out).read_text()
    assert (
        index.count(' domain-mark"') == 2
        and ">domain borderline</span>" in index
        and ">out of domain</span>" in index
    )


def test_summary_csv_has_the_domain_columns(judged_as, tmp_path: Path) -> None:
    from wsi_screen.batch.summary import write_summary

    out = tmp_path / "OUT"
    report = judged_as(out / "near", _judged(0.993))
    row = {"input": "near.png", "status": "ok", "output": "near/report.json", **report_figures(report)}
    write_summary([row], out)
    rows = list(csv.DictReader((out / SUMMARY_CSV).open()))
    assert rows[0]["domain"] == "borderline" and float(rows[0]["domain_score"]) == 0.993


def test_the_case_page_shows_the_domain_state(judged_as, tmp_path: Path) -> None:
    from wsi_screen.case_screen import write_case_html

    report = judged_as(tmp_path / "OUT" / "f", _judged(1.048))
    report["case"] = {"name": "S-1", "n_fields": 1, "n_fields_screened": 1, "skipped": []}
    fields = [{"name": "f", "cells_detected": 60, "cells_counted": 50, "blast_percent": 4.0,
               "low_confidence_fraction": 0.1, "domain": "borderline", "domain_score": 1.048}]  # fmt: skip
    write_case_html(report, fields, tmp_path / "case.html")
    html = (tmp_path / "case.html").read_text()
    assert 'id="domain-borderline"' in html and "Blast and hairy-cell flags are not decided" in html
    assert "borderline (1.05)" in html
