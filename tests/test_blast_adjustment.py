"""The blast % adjusted for the model's measured blast confusion: interval, coverage, flags, bundle, fit."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsi_screen.aggregate import summarize
from wsi_screen.blast import NO_RATES
from wsi_screen.blast import adjusted_bounds
from wsi_screen.blast_rates import BlastRates
from wsi_screen.classifiers import models_dir
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.config import AggregateConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.blast_rates_fit import RateCounts
from wsi_screen.training.blast_rates_fit import match_centres

MATEK = Path(__file__).resolve().parents[2] / "shared" / "data" / "matek_bm"
EXCLUDED = AggregateConfig().excluded_classes
NAMES = ("ART", "BLA", "LYT", "NGS")


def rates(tp: int, nb: int, fp: int, no: int) -> BlastRates:
    return BlastRates(("BLA",), EXCLUDED, nb, tp, no, fp, "test")


def calls(n_blast: int, n_other: int) -> tuple[list[str], np.ndarray]:
    labels = ["BLA"] * n_blast + ["NGS"] * n_other
    probs = np.zeros((len(labels), len(NAMES)), np.float32)
    for i, lab in enumerate(labels):
        probs[i, NAMES.index(lab)] = 1.0
    return labels, probs


def flag(summary: dict, cut: int) -> dict:
    return next(f for f in summary["flags"] if f["name"] == f"blasts_ge_{cut}pct")


@pytest.mark.parametrize(
    ("sens", "n_blasts", "fpr", "n_others"), [(0.6, 49, 0.034, 235), (0.5, 30, 0.05, 150)]
)
@pytest.mark.parametrize("n", [100, 430, 1000])
def test_adjusted_interval_covers_the_true_share(
    sens: float, n_blasts: int, fpr: float, n_others: int, n: int
) -> None:
    """Simulated: rates measured on a validation set, a case counted; the interval must hold the truth.

    Nominal 95 %; the delta method falls to about 93 % where the sensitivity's uncertainty rules
    (true share 35 %, rates from 30 blasts, 1,000 cells), so each cell of the grid must reach 92 %
    and the grid 95 % on average.
    """
    rng = np.random.default_rng(n + n_blasts)
    reps = 1500
    seen = []
    for p in (0.0, 0.03, 0.12, 0.35):
        tp = rng.binomial(n_blasts, sens, reps)
        fp = rng.binomial(n_others, fpr, reps)
        k = rng.binomial(n, p * sens + (1 - p) * fpr, reps)
        cover = [
            lo <= p <= hi
            for lo, hi in (
                adjusted_bounds(k[i], n, rates(tp[i], n_blasts, fp[i], n_others)) for i in range(reps)
            )
        ]
        seen.append(np.mean(cover))
        assert seen[-1] >= 0.92, (p, n, seen[-1])
    assert np.mean(seen) >= 0.95, seen


def test_adjusted_interval_tends_to_the_counts_own_with_perfect_well_measured_rates() -> None:
    lo, hi = adjusted_bounds(50, 500, rates(10**7, 10**7, 0, 10**7))
    assert lo == pytest.approx(0.0765, abs=2e-3) and hi == pytest.approx(0.129, abs=2e-3)  # Wilson 7.7-12.9 %
    # a model that calls blasts no more often among blasts than among others says nothing
    assert adjusted_bounds(50, 500, rates(5, 100, 20, 400)) == (0.0, 1.0)


def test_cut_offs_decide_on_the_adjusted_interval() -> None:
    labels, probs = calls(25, 375)  # 6.25 % called blast: by count >= 10 % is not raised
    cfg = AggregateConfig()
    r = rates(50, 100, 8, 400)  # half the blasts are found: the true share is nearer 9 %
    plain = summarize(labels, probs, NAMES, cfg)
    adj = summarize(labels, probs, NAMES, cfg, blast_rates=r)
    assert flag(plain, 10)["status"] == "not_raised"
    assert plain["blast"]["adjusted"] == {"applied": False, "reason": NO_RATES}
    b = adj["blast"]["adjusted"]
    assert b["applied"] and b["sensitivity"] == 0.5 and b["false_blast_rate"] == 0.02
    assert b["percent"] == pytest.approx(100 * (0.0625 - 0.02) / 0.48, abs=1e-3)
    f10 = flag(adj, 10)
    assert f10["status"] == "indeterminate" and f10["ci95"] == b["ci95"] and f10["value"] == b["percent"]
    assert "adjusted for the model's measured blast sensitivity 0.50" in f10["message"]
    assert f10["more_cells_to_decide"] is None or f10["more_cells_to_decide"] > 0
    # the count's own figures stay as they were
    assert adj["blast"]["percent"] == plain["blast"]["percent"] == 6.25
    # switched off in the configuration: the count decides
    off = summarize(labels, probs, NAMES, dataclasses.replace(cfg, blast_adjustment="none"), blast_rates=r)
    assert flag(off, 10)["status"] == "not_raised"
    assert off["blast"]["adjusted"]["reason"] == "aggregate.blast_adjustment is 'none'"


def test_rates_measured_for_other_blast_classes_are_not_applied() -> None:
    labels, probs = calls(25, 375)
    other = BlastRates(("BLA", "PMO"), EXCLUDED, 100, 50, 400, 8, "")
    s = summarize(labels, probs, NAMES, AggregateConfig(), blast_rates=other)
    assert not s["blast"]["adjusted"]["applied"]
    assert "measured for blast classes BLA, PMO" in s["blast"]["adjusted"]["reason"]
    assert flag(s, 10)["status"] == "not_raised"


def test_more_cells_decide_when_the_rates_are_precise() -> None:
    precise = rates(9000, 10000, 100, 10000)  # sensitivity 0.9, false-blast rate 0.01, well measured
    s = summarize(*calls(30, 370), NAMES, AggregateConfig(), blast_rates=precise)  # 7.5 % called
    f = flag(s, 10)
    assert f["status"] == "indeterminate", f
    more = f["more_cells_to_decide"]
    assert more is not None and more > 0
    total = 400 + more + 2  # the same proportion with that many more cells decides it
    k = round(0.075 * total)
    assert flag(summarize(*calls(k, total - k), NAMES, AggregateConfig(), blast_rates=precise), 10)[
        "status"
    ] == ("not_raised")
    # imprecise rates: no count of cells decides it
    loose = summarize(*calls(30, 370), NAMES, AggregateConfig(), blast_rates=rates(15, 25, 8, 235))
    assert flag(loose, 10)["status"] == "indeterminate"


def test_config_refuses_an_unknown_adjustment() -> None:
    with pytest.raises(ConfigError, match="blast_adjustment"):
        AggregateConfig(blast_adjustment="yes")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"blasts": -1}, "blasts must be a non-negative integer"),
        ({"blasts_called_blast": 60, "blasts": 50}, "exceeds its total"),
        ({"others": True}, "others must be a non-negative integer"),
        ({"blast_classes": "BLA"}, "blast_classes must be a list"),
        ({"fitted_on": 3}, "fitted_on must be a string"),
    ],
)
def test_bundle_refuses_bad_blast_rates(tmp_path: Path, change: dict, match: str) -> None:
    src = models_dir() / "default"
    shutil.copytree(src, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["blast_rates"] = {**rates(29, 49, 8, 235).to_json(), **change}
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelBundleError, match=match) as e:
        ModelBundle.load(tmp_path / "m")
    assert "model.json" in str(e.value)


def test_blast_rates_round_trip() -> None:
    r = rates(29, 49, 8, 235)
    assert BlastRates.from_json(r.to_json(), "x") == r
    assert r.to_json()["sensitivity"] == round(29 / 49, 4)


def test_match_centres_takes_each_patch_once_nearest_first() -> None:
    det = np.array([[100.0, 100], [104, 100], [400, 400], [700, 700]])
    cen = np.array([[102.0, 100], [400, 410]])
    assert match_centres(det, cen, 60) == [0, None, 1, None]
    assert match_centres(det[:0], cen, 60) == []


def test_rate_counts_skip_excluded_calls() -> None:
    c, cfg = RateCounts(), AggregateConfig()
    for truth, call in [("BLA", "BLA"), ("BLA", "PMO"), ("BLA", "ART"), ("LYT", "BLA"), ("LYT", "LYT")]:
        c.add(truth, call, cfg)
    assert (c.blasts, c.blasts_called_blast, c.others, c.others_called_blast, c.excluded_calls) == (
        2,
        1,
        2,
        1,
        1,
    )


@pytest.mark.skipif(not MATEK.is_dir(), reason="../shared/data/matek_bm (real Matek patches) is absent")
def test_fit_on_the_default_models_validation_split(tmp_path: Path) -> None:
    from wsi_screen.training.blast_rates_fit import fit_blast_rates

    shutil.copytree(models_dir() / "default", tmp_path / "m")
    r, counts = fit_blast_rates(tmp_path / "m", MATEK)
    shipped = ModelBundle.load(models_dir() / "default").blast_rates
    assert shipped is not None
    # the shipped rates are this measurement (detection can move a cell or two between runs)
    assert abs(r.blasts - shipped.blasts) <= 2 and abs(r.others - shipped.others) <= 4
    assert abs(r.sensitivity - shipped.sensitivity) < 0.05
    assert 0.3 < r.sensitivity < 0.95 and r.false_blast_rate < 0.1
    assert counts.missed < 0.05 * (r.blasts + r.others)
    assert "validation split" in r.fitted_on and "heldout" not in r.fitted_on.split("(")[0]
    assert ModelBundle.load(tmp_path / "m").blast_rates == r
