from __future__ import annotations

import numpy as np
import pytest

from wsi_screen.aggregate import proportion_ci
from wsi_screen.aggregate import summarize
from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config import AggregateConfig
from wsi_screen.config import HairyCellConfig

CLASSES = ("ART", "BLA", "EBO", "HAC", "LYT", "NGS", "NIF", "PEB")


def one_hot(labels: list[str], classes: tuple[str, ...] = CLASSES, conf: float = 0.9) -> np.ndarray:
    p = np.full((len(labels), len(classes)), (1 - conf) / (len(classes) - 1), np.float32)
    for i, lab in enumerate(labels):
        p[i, classes.index(lab)] = conf
    return p


def flag(summary: dict, name: str) -> dict:
    return next(f for f in summary["flags"] if f["name"] == name)


def test_wilson_interval_matches_hand_computation() -> None:
    lo, hi = proportion_ci(20, 200, "wilson")
    assert lo == pytest.approx(6.567, abs=0.01)
    assert hi == pytest.approx(14.941, abs=0.01)
    lo, hi = proportion_ci(0, 50, "exact")
    assert lo == 0.0
    assert hi == pytest.approx(100 * (1 - 0.025 ** (1 / 50)), abs=0.01)  # Clopper-Pearson at k = 0
    assert proportion_ci(0, 0) is None


def test_differential_excludes_artefacts_and_counts_blasts() -> None:
    labels = (
        ["BLA"] * 10 + ["NGS"] * 60 + ["LYT"] * 20 + ["EBO"] * 8 + ["PEB"] * 2 + ["ART"] * 7 + ["NIF"] * 3
    )
    s = summarize(labels, one_hot(labels), CLASSES, AggregateConfig(min_cells=100))
    assert s["cells_detected"] == 110
    assert s["cells_counted"] == 100
    assert s["differential"]["BLA"]["percent"] == 10.0
    assert s["differential"]["NGS"]["count"] == 60
    assert "ART" not in s["differential"] and s["excluded"]["ART"]["count"] == 7
    assert s["excluded"]["NIF"]["percent_of_detected"] == pytest.approx(100 * 3 / 110, abs=1e-3)
    assert s["blast"]["percent"] == 10.0
    assert s["blast"]["ci95"] == proportion_ci(10, 100)
    # summed probability: each call has p = 0.9 on its class and (0.1 / 7) on every other class
    other = 0.1 / 7
    p_blast = 10 * 0.9 + 100 * other
    p_counted = 10 * (1 - 0.9 - other) + 100 * (1 - 2 * other)  # 1 - P(ART) - P(NIF) per cell
    assert s["blast"]["percent_prob"] == pytest.approx(100 * p_blast / p_counted, abs=1e-2)
    assert s["me_ratio"]["value"] == pytest.approx(70 / 10)  # myeloid: BLA + NGS; erythroid: EBO + PEB
    assert flag(s, "blasts_ge_5pct")["status"] == "raised"
    # 10 % of 100 cells (95 % CI 5.5-17.4): the interval spans 10 %, and no count at exactly the
    # cut-off can decide it
    ge10 = flag(s, "blasts_ge_10pct")
    assert ge10["status"] == "indeterminate"
    assert ge10["more_cells_to_decide"] is None
    assert "cannot decide" in ge10["message"]
    assert flag(s, "blasts_ge_20pct")["status"] == "not_raised"
    assert flag(s, "too_few_cells")["status"] == "not_raised"
    assert s["qc"]["artefact_fraction"] == pytest.approx(7 / 110, abs=1e-4)


def test_hairy_flag_not_assessable_without_hac_class() -> None:
    classes = ("BLA", "LYT", "NGS")
    labels = ["LYT"] * 30
    s = summarize(labels, one_hot(labels, classes), classes, AggregateConfig())
    assert flag(s, "hairy_cells")["status"] == "not_assessable"
    assert s["me_ratio"]["status"] == "not_assessable"
    assert "HAC" in s["qc"]["classes_not_covered"]


def test_hairy_flag_raised_only_with_confident_calls() -> None:
    cfg = AggregateConfig(hairy_cell=HairyCellConfig(min_count=5, min_percent=2.0, min_confidence=0.8))
    labels = ["HAC"] * 6 + ["LYT"] * 94
    assert (
        flag(summarize(labels, one_hot(labels, conf=0.9), CLASSES, cfg), "hairy_cells")["status"] == "raised"
    )
    unsure = flag(summarize(labels, one_hot(labels, conf=0.7), CLASSES, cfg), "hairy_cells")
    assert unsure["status"] == "indeterminate"  # 0 of 100: the interval (0-3.7 %) spans 2 %
    assert unsure["more_cells_to_decide"] and "indeterminate" in unsure["message"]
    many = ["LYT"] * 500
    assert flag(summarize(many, one_hot(many), CLASSES, cfg), "hairy_cells")["status"] == "not_raised"
    few = ["HAC"] * 4 + ["LYT"] * 16  # 20 %, but fewer than min_count confident calls
    assert flag(summarize(few, one_hot(few), CLASSES, cfg), "hairy_cells")["status"] == "indeterminate"


def test_blast_not_assessable_when_model_lacks_blast_classes() -> None:
    classes = ("LYT", "NGS")
    labels = ["LYT", "NGS"]
    s = summarize(labels, one_hot(labels, classes), classes, AggregateConfig())
    assert s["blast"]["status"] == "not_assessable" and s["blast"]["percent"] is None
    assert {f["status"] for f in s["flags"] if f["name"].startswith("blasts_")} == {"not_assessable"}


def test_blast_by_probability_not_given_when_no_cell_is_counted() -> None:
    labels = ["ART"] * 30 + ["NIF"] * 5  # every detection outside the differential
    s = summarize(labels, one_hot(labels, conf=0.95), CLASSES, AggregateConfig())
    assert s["cells_counted"] == 0
    assert s["blast"]["status"] == "not_assessable"
    assert s["blast"]["percent"] is None
    assert s["blast"]["percent_prob"] is None  # not 0.05/7 of leftover probability mass
    assert s["blast"]["expected_count_prob"] > 0


def test_zero_cells_gives_a_valid_empty_summary() -> None:
    s = summarize([], np.zeros((0, len(CLASSES)), np.float32), CLASSES, AggregateConfig())
    assert s["cells_counted"] == 0
    assert s["blast"]["percent"] is None
    assert flag(s, "too_few_cells")["status"] == "raised"
    assert flag(s, "hairy_cells")["status"] == "not_assessable"
    assert s["me_ratio"]["status"] == "undefined"


def test_configurable_blast_classes_and_cutoffs() -> None:
    classes = ("BLA", "LYI", "LYT")
    labels = ["BLA"] * 3 + ["LYI"] * 3 + ["LYT"] * 14
    cfg = AggregateConfig(blast_classes=("BLA", "LYI"), blast_cutoffs_percent=(25.0,))
    s = summarize(labels, one_hot(labels, classes), classes, cfg)
    assert s["blast"]["percent"] == 30.0
    assert [f["name"] for f in s["flags"] if f["name"].startswith("blasts_")] == ["blasts_ge_25pct"]


def test_blast_flag_below_cut_is_not_assessable_when_the_model_lacks_some_blast_classes() -> None:
    classes = ("BLA", "LYT")  # the configured blast equivalents include FGC, which this model cannot call
    labels = ["BLA"] * 8 + ["LYT"] * 92  # 8 % (95 % CI 4.1-15.0)
    cfg = AggregateConfig(blast_classes=("BLA", "FGC"), blast_cutoffs_percent=(2.0, 5.0), min_cells=100)
    s = summarize(labels, one_hot(labels, classes), classes, cfg)
    assert s["blast"]["classes_missing_from_model"] == ["FGC"]
    ge2, ge5 = flag(s, "blasts_ge_2pct"), flag(s, "blasts_ge_5pct")
    assert ge2["status"] == "raised"  # a lower bound above the cut-off still raises it
    assert ge5["status"] == "not_assessable"  # never a false "not raised" or "indeterminate"
    assert "lower bound" in ge5["message"] and "FGC" in ge5["message"]
    assert ge5["more_cells_to_decide"] is None
    none = ["LYT"] * 100  # 0 % (95 % CI 0-3.7): below 5 % unless the missing class hides blasts
    lacking = summarize(none, one_hot(none, classes), classes, cfg)
    assert flag(lacking, "blasts_ge_5pct")["status"] == "not_assessable"
    full = summarize(none, one_hot(none, classes), classes, AggregateConfig(blast_cutoffs_percent=(5.0,)))
    assert flag(full, "blasts_ge_5pct")["status"] == "not_raised"


def test_blast_flag_message_names_a_count_below_the_minimum() -> None:
    labels = ["BLA"] * 1 + ["LYT"] * 49
    s = summarize(labels, one_hot(labels), CLASSES, AggregateConfig(min_cells=500))
    assert "only 50 cells counted (minimum 500)" in flag(s, "blasts_ge_5pct")["message"]


def test_artefact_classes_come_from_the_configuration() -> None:
    classes = ("BLA", "JUNK", "LYT", "UNK")
    labels = ["JUNK"] * 40 + ["UNK"] * 10 + ["LYT"] * 50
    cfg = AggregateConfig(
        excluded_classes=("JUNK", "UNK"), artefact_class="JUNK", not_identifiable_class="UNK"
    )
    s = summarize(labels, one_hot(labels, classes), classes, cfg)
    assert flag(s, "many_artefacts")["status"] == "raised" and flag(s, "many_artefacts")["value"] == 40.0
    assert s["qc"]["artefact_fraction"] == 0.4 and s["qc"]["not_identifiable_fraction"] == 0.1
    default = summarize(
        labels, one_hot(labels, classes), classes, AggregateConfig(excluded_classes=("JUNK", "UNK"))
    )
    assert flag(default, "many_artefacts")["status"] == "not_assessable"  # no ART class: never "not raised"
    assert default["qc"]["artefact_fraction"] is None


def test_class_code_typos_in_the_configuration_are_refused() -> None:
    from wsi_screen.aggregate import check_class_codes
    from wsi_screen.errors import ConfigError

    check_class_codes(AggregateConfig(), CLASSES)  # defaults: Matek codes
    check_class_codes(AggregateConfig(blast_classes=("MYBLAST",)), (*CLASSES, "MYBLAST"))  # the model's own
    with pytest.raises(ConfigError, match=r"aggregate\.excluded_classes: unknown class code\(s\) 'art'"):
        check_class_codes(AggregateConfig(excluded_classes=("art", "NIF")), CLASSES)
    with pytest.raises(ConfigError, match=r"aggregate\.blast_classes: .*'bla'"):
        check_class_codes(AggregateConfig(blast_classes=("bla",)), CLASSES)


def test_blast_flags_follow_their_interval_at_the_boundaries() -> None:
    from wsi_screen.aggregate import cells_to_decide

    cfg = AggregateConfig(min_cells=10, blast_cutoffs_percent=(5.0,))

    def ge5(n_bla: int, n: int) -> dict:
        labels = ["BLA"] * n_bla + ["NGS"] * (n - n_bla)
        return flag(summarize(labels, one_hot(labels), CLASSES, cfg), "blasts_ge_5pct")

    # 2 of 32 (6.2 %, CI 1.7-20.1): the example is indeterminate, with the count that decides it
    f = ge5(2, 32)
    assert f["status"] == "indeterminate"
    assert f["more_cells_to_decide"] == cells_to_decide(2, 32, 5.0) > 0
    assert f"about {f['more_cells_to_decide']} more" in f["message"]
    # just decided either way: lower bound >= cut-off, upper bound < cut-off
    n = 400
    k_raise = next(k for k in range(n) if proportion_ci(k, n)[0] >= 5.0)
    assert ge5(k_raise, n)["status"] == "raised"
    assert ge5(k_raise - 1, n)["status"] == "indeterminate"
    k_clear = max(k for k in range(n) if proportion_ci(k, n)[1] < 5.0)
    assert ge5(k_clear, n)["status"] == "not_raised"
    assert ge5(k_clear + 1, n)["status"] == "indeterminate"
    # the decided flags carry no count to add
    assert ge5(k_raise, n)["more_cells_to_decide"] is None


def test_reviewed_classes_the_model_cannot_call_give_lower_bounds() -> None:
    """After review the figures cover classes only a reviewer assigned: what rests on them says so."""
    model = ("ART", "BLA", "LYT", "NGS")
    names = (*model, "EBO", "HAC")  # the reviewer used EBO and HAC
    labels = ["NGS"] * 30 + ["EBO"] * 10 + ["HAC"] * 1 + ["LYT"] * 9
    probs = np.zeros((len(labels), len(names)), np.float32)
    for i, lab in enumerate(labels):
        probs[i, names.index(lab)] = 1.0
    cfg = AggregateConfig()
    s = summarize(labels, probs, names, cfg, model_classes=model)
    assert s["me_ratio"]["status"] == "assessed"
    assert s["me_ratio"]["message"].endswith("EBO from review only (the model cannot call them)")
    hairy = next(f for f in s["flags"] if f["name"] == "hairy_cells")
    assert (
        hairy["status"] == "not_assessable"
        and "a lower bound only: the model has no HAC class" in hairy["message"]
    )
    assert s["qc"]["classes_not_covered"] == sorted(set(MATEK_CLASSES) - set(model))
    # the same cells as the model's own calls: no lower bound
    plain = summarize(labels, probs, names, cfg)
    assert next(f for f in plain["flags"] if f["name"] == "hairy_cells")["status"] == "indeterminate"
    assert "review only" not in plain["me_ratio"]["message"]
