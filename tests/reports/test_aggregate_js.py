# ruff: noqa: F811  (fixtures imported from _fixtures are used as test parameters)
"""aggregate.js decides blast cut-offs in the three states of aggregate.py (one set of rules).

The page's script is run in headless Chromium on the same (blast count, counted cells, cut-off)
cases as :func:`wsi_screen.aggregate.decide` and :func:`~wsi_screen.aggregate.cells_to_decide`.
"""

from __future__ import annotations

import html as htmllib
import json
import re

from _browser import run_chromium
from _fixtures import chromium  # noqa: F401 - pytest fixture

from wsi_screen.aggregate import MAX_CELLS_TO_DECIDE
from wsi_screen.aggregate import cells_to_decide
from wsi_screen.aggregate import decide
from wsi_screen.aggregate import proportion_ci
from wsi_screen.reports.html_report import static_text

CASES = [(2, 32, 5.0), (1, 19, 1.0), (1, 19, 25.0), (0, 20, 5.0), (20, 20, 5.0), (5, 100, 5.0), (30, 100, 20.0),
         (3, 200, 1.0), (7, 50, 10.0)]  # fmt: skip


def test_three_state_blast_decisions_match_python(chromium, tmp_path):
    out = {}
    for method in ("wilson", "exact"):
        out[method] = [
            [decide(proportion_ci(k, n, method), cut), cells_to_decide(k, n, cut, method)]
            for k, n, cut in CASES
        ]
    script = (
        "var A = WsiAggregate, cases = " + json.dumps(CASES) + ", res = {};"
        '["wilson", "exact"].forEach(function (m) { res[m] = cases.map(function (c) {'
        " return [A.decide(A.proportionCI(c[0], c[1], m), c[2]), A.cellsToDecide(c[0], c[1], c[2], m, "
        + str(MAX_CELLS_TO_DECIDE)
        + ")]; }); });"
        "document.body.setAttribute('data-res', JSON.stringify(res));"
    )
    page = tmp_path / "p.html"
    page.write_text(
        f"<html><body><script>{static_text('aggregate.js')}</script><script>{script}</script></body></html>"
    )
    run = run_chromium(chromium, page, tmp_path / "profile")
    m = re.search(r'data-res="([^"]*)"', run.dom)
    assert m, run.console
    got = json.loads(htmllib.unescape(m.group(1)))
    assert got == out
    assert {s for s, _ in out["wilson"]} == {"raised", "not_raised", "indeterminate"}  # all three states met


def test_summarize_matches_python_on_hairy_cells_and_blasts(chromium, tmp_path):
    """The page's summarize gives report.json's flags (hairy cells in three states too) and figures."""
    import numpy as np

    from wsi_screen.aggregate import summarize
    from wsi_screen.classes import MATEK_CLASSES
    from wsi_screen.config import AggregateConfig
    from wsi_screen.reports.rules import page_rules

    names = list(MATEK_CLASSES)
    cfg = AggregateConfig()
    rng = np.random.default_rng(3)
    sets = []
    for n_hac, n_bla, n in ((0, 2, 40), (3, 10, 100), (6, 30, 100), (30, 40, 600), (0, 0, 500)):
        others = rng.choice(["NGS", "LYT", "EBO", "MON", "ART", "PMO"], size=n - n_hac - n_bla).tolist()
        sets.append(["HAC"] * n_hac + ["BLA"] * n_bla + others)
    python = []
    cells_js = []
    for labels in sets:
        probs = np.zeros((len(labels), len(names)), np.float32)
        for i, lab in enumerate(labels):
            probs[i, names.index(lab)] = 1.0
        s = summarize(labels, probs, tuple(names), cfg)
        python.append({k: s[k] for k in ("flags", "differential", "me_ratio", "cells_counted")})
        cells_js.append([{"label": lab, "pb": 1.0 if lab in cfg.blast_classes else 0.0,
                          "pc": 0.0 if lab in cfg.excluded_classes else 1.0, "conf": 1.0} for lab in labels])  # fmt: skip
    script = (
        "var A = WsiAggregate, sets = "
        + json.dumps(cells_js)
        + ", names = "
        + json.dumps(names)
        + ", rules = "
        + json.dumps(page_rules(cfg))
        + ";"
        "var res = sets.map(function (c) { var s = A.summarize(c, names, names, rules, null);"
        " return {flags: s.flags, differential: s.differential, me_ratio: s.me_ratio, cells_counted: s.cells_counted}; });"
        "document.body.setAttribute('data-res', JSON.stringify(res));"
    )
    page = tmp_path / "summ.html"
    page.write_text(
        "<!doctype html><html><body><script>"
        + str(static_text("aggregate.js"))
        + "</script><script>"
        + script
        + "</script></body></html>",
        encoding="utf-8",
    )
    run = run_chromium(chromium, page, tmp_path / "profile")
    assert run.console == [], run.console
    got = json.loads(htmllib.unescape(re.search(r'data-res="([^"]*)"', run.dom).group(1)))
    assert [f["status"] for f in python[1]["flags"] if f["name"] == "hairy_cells"] == ["indeterminate"]
    assert [f["status"] for f in python[3]["flags"] if f["name"] == "hairy_cells"] == ["raised"]
    assert [f["status"] for f in python[4]["flags"] if f["name"] == "hairy_cells"] == ["not_raised"]
    assert got == python
