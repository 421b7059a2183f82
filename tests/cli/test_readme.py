"""The README's quick-start run command works as written and shows real figures."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from wsi_screen.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_quick_start_run_command(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if ln.startswith(".venv/bin/wsi-screen run "))
    words = shlex.split(line)[1:]
    args: list[str] = [words[0]]
    for w in words[1:]:
        args += [str(f) for f in sorted(ROOT.glob(w))] if "*" in w else [w]
    args[args.index("-o") + 1] = str(tmp_path / "out")
    res = CliRunner().invoke(main, [a if not a.startswith("examples/") else str(ROOT / a) for a in args])
    assert res.exit_code == 0, res.output
    reports = sorted((tmp_path / "out").glob("*/report.json"))
    assert len(reports) == 1  # the example case: one specimen, one pooled report
    report = json.loads(reports[0].read_text())
    assert report["input"]["kind"] == "case" and report["case"]["n_fields_screened"] == 4
    assert report["cells_counted"] > 0  # a real differential, not the empty one of cartoon cells
    assert len(list((tmp_path / "out").glob("*/fields/*/report.html"))) == 4
    page = (reports[0].parent / "report.html").read_text(encoding="utf-8")
    adjusted = report["blast"]["adjusted"]
    assert adjusted["applied"]  # the flags decide on the adjusted interval: the case page shows it
    assert 'id="blast-adjusted"' in page and f"{adjusted['percent']:.1f} %" in page
    assert (tmp_path / "out" / "index.html").is_file()
