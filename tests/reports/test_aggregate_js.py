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
