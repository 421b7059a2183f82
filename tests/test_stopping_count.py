"""The stopping rule in the pipeline: count regions best first, stop once every cut-off is decided."""

from __future__ import annotations

import json
from pathlib import Path

import _regions_synthetic as rs
import polars as pl
from _synthetic import write_pyramidal_tiff
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.config import AggregateConfig
from wsi_screen.config import StoppingConfig
from wsi_screen.stopping import SequentialRule
from wsi_screen.stopping_count import count_until_decided


def test_a_clear_count_stops_at_the_first_look_and_an_unclear_one_uses_every_region() -> None:
    agg = AggregateConfig()
    rule = StoppingConfig(enabled=True, min_cells=500, look_every=100)
    labels = (["NGS"] * 9 + ["ART"]) * 200  # no blasts; every tenth cell an artefact (examined, not counted)
    groups = [(r, list(range(r * 100, (r + 1) * 100))) for r in range(20)]
    out = count_until_decided(groups, labels, agg, rule)
    assert out.info["stopped"] and out.info["reason"] == "decided"
    assert out.info["cells_counted"] == 500 and out.info["cells_examined"] == sum(out.used)
    assert out.info["regions_used"] == 6 and out.info["stopped_in_region"] == 5  # 500 counted = 555 examined
    assert set(out.info["decisions"].values()) == {"not_raised"}
    assert not any(out.used[600:])
    # 5 % blasts sit on the 5 % cut-off: never decided, every region is counted
    share = (["BLA"] + ["NGS"] * 19) * 100
    out = count_until_decided([(0, list(range(2000)))], share, agg, rule)
    assert not out.info["stopped"] and out.info["reason"] == "regions used up"
    assert out.info["cells_counted"] == 2000 and all(out.used)
    assert out.info["decisions"]["blasts_ge_5pct"] == "indeterminate"
    assert out.info["interval"] == SequentialRule(min_cells=500, look_every=100).interval(100, 2000)


def _config(tmp_path: Path) -> Path:
    """Every class blast-equivalent and none excluded: whatever the untrained test model calls, the
    blast share is 100 % and the 5 % cut-off is decided (raised) at the first look, after 5 cells."""
    cfg = tmp_path / "stop.toml"
    cfg.write_text(
        "[stopping]\nenabled = true\nmin_cells = 5\nlook_every = 5\n"
        '[aggregate]\nblast_cutoffs_percent = [5.0]\nexcluded_classes = ["OTH"]\n'
        'blast_classes = ["ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO"]\n'
    )
    return cfg


def test_a_slide_stops_when_decided_and_says_where(tmp_path: Path, tiny_bundle: Path) -> None:
    fields = [[rs.monolayer(1200, 800, mpp=0.25, seed=s)[0] for s in (1, 2)]]
    slide = write_pyramidal_tiff(tmp_path / "slide.tiff", rs.mosaic(fields), mpp=0.25, levels=3)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["run", str(slide), "-o", str(out), "--model", str(tiny_bundle), "--config", str(_config(tmp_path))],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "slide" / "report.json").read_text())
    stop = report["stopping"]
    assert stop["stopped"] and stop["decisions"] == {"blasts_ge_5pct": "raised"}
    assert report["cells_counted"] == stop["cells_counted"] >= 5
    cells = pl.read_parquet(out / "slide" / "cells.parquet")
    assert cells["counted"].sum() == stop["cells_examined"] < cells.height  # the other cells were not needed
    statuses = {r["status"] for r in report["regions"]}
    assert "not_needed" in statuses and "counted" in statuses
    assert stop["regions_used"] == sum(1 for r in report["regions"] if r["status"] == "counted")
    assert 'id="stopping"' in (out / "slide" / "report.html").read_text()


def test_a_case_stops_when_decided(tmp_path: Path, tiny_bundle: Path) -> None:
    import cv2

    folder = tmp_path / "smear"
    folder.mkdir()
    for s in (1, 2, 3):
        cv2.imwrite(str(folder / f"f{s}.png"), rs.monolayer(1200, 800, mpp=0.25, seed=s)[0][:, :, ::-1])
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["run", str(folder), "--mpp", "0.25", "-o", str(out), "--model", str(tiny_bundle),
         "--config", str(_config(tmp_path))],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((out / "smear" / "report.json").read_text())
    stop = report["stopping"]
    assert stop["stopped"] and report["cells_counted"] == stop["cells_counted"]
    cells = pl.read_parquet(out / "smear" / "cells.parquet")
    assert cells["counted"].sum() == stop["cells_examined"] < cells.height
    assert sum(f["cells_used"] for f in report["fields"]) == stop["cells_examined"]
    assert isinstance(stop["stopped_in_region"], list) and stop["stopped_in_region"][0] in {"f1", "f2", "f3"}
    assert 'id="stopping"' in (out / "smear" / "report.html").read_text()


def test_when_the_rule_decides_the_reports_interval_decides_the_same() -> None:
    """The report's flags (fixed-sample interval at the stop) agree with the rule that stopped."""
    from wsi_screen.aggregate import decide
    from wsi_screen.aggregate import proportion_ci

    for method in ("alpha_spending", "confidence_sequence"):
        rule = SequentialRule(method=method)
        for n in (500, 600, 1000, 1500):
            for k in range(0, n + 1, 7):
                for cut in (5.0, 10.0, 20.0):
                    d = rule.decisions(k, n, [cut])[cut]
                    if d != "indeterminate":
                        assert decide(proportion_ci(k, n, "wilson"), cut) == d, (method, n, k, cut)
