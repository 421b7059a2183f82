"""Aggregation: differential count, blast %, M:E ratio, flags and QC from per-cell calls.

Every rule comes from :class:`AggregateConfig`; a flag whose class the model does not have is
``not_assessable``, never ``not_raised``. The three-state decision of a cut-off and the intervals
are in :mod:`wsi_screen.intervals` (re-exported here), the blast share and its flags in
:mod:`wsi_screen.blast`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.blast import blast_block
from wsi_screen.blast import blast_flags
from wsi_screen.blast_rates import BlastRates
from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config import AggregateConfig
from wsi_screen.domain_gate import domain_qc
from wsi_screen.domain_gate import gate_flags
from wsi_screen.errors import ConfigError
from wsi_screen.intervals import INDETERMINATE
from wsi_screen.intervals import MAX_CELLS_TO_DECIDE
from wsi_screen.intervals import NOT_ASSESSABLE
from wsi_screen.intervals import NOT_RAISED
from wsi_screen.intervals import RAISED
from wsi_screen.intervals import Flag
from wsi_screen.intervals import cells_to_decide
from wsi_screen.intervals import decide
from wsi_screen.intervals import pct
from wsi_screen.intervals import proportion_ci

__all__ = [
    "INDETERMINATE",
    "MAX_CELLS_TO_DECIDE",
    "NOT_ASSESSABLE",
    "NOT_RAISED",
    "RAISED",
    "Flag",
    "cells_to_decide",
    "check_class_codes",
    "decide",
    "proportion_ci",
    "summarize",
]


def check_class_codes(cfg: AggregateConfig, class_names: tuple[str, ...]) -> None:
    """Refuse class codes in the configuration that are neither the model's nor Matek codes.

    A typo (``art`` for ``ART``) would otherwise silently move cells in or out of the count.

    Raises:
        ConfigError: naming the key and the unknown codes.
    """
    known = set(class_names) | set(MATEK_CLASSES)
    groups = {
        "excluded_classes": cfg.excluded_classes,
        "blast_classes": cfg.blast_classes,
        "myeloid_classes": cfg.myeloid_classes,
        "erythroid_classes": cfg.erythroid_classes,
        "artefact_class": (cfg.artefact_class,),
        "not_identifiable_class": (cfg.not_identifiable_class,),
        "hairy_cell.hairy_class": (cfg.hairy_cell.hairy_class,),
    }
    for key, codes in groups.items():
        unknown = [c for c in codes if c not in known]
        if unknown:
            msg = (
                f"aggregate.{key}: unknown class code(s) {', '.join(map(repr, unknown))}; "
                f"codes are the model's ({', '.join(class_names)}) or Matek codes (upper case)"
            )
            raise ConfigError(msg)


def summarize(
    labels: list[str],
    probs: NDArray[np.float32],
    class_names: tuple[str, ...],
    cfg: AggregateConfig,
    domain: dict[str, Any] | None = None,
    model_classes: tuple[str, ...] | list[str] | None = None,
    blast_rates: BlastRates | None = None,
    unfamiliar: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """Compute the report's figures from per-cell labels and probabilities.

    Args:
        labels: argmax class per cell (after any review corrections).
        probs: N x C class probabilities in ``class_names`` order.
        class_names: the model's classes.
        cfg: the aggregation rules.
        domain: the input's out-of-domain judgement (None: the model has no domain reference);
            out of domain, blast and hairy-cell flags are ``not_assessable`` (``cfg.domain_gate``).
        model_classes: the classes the model can call (None: ``class_names``). After review,
            ``class_names`` also holds classes only a reviewer assigned: a figure resting on one
            of them is a lower bound, and its flag says so (``not_assessable`` unless raised).
        blast_rates: the model's measured blast confusion; with ``cfg.blast_adjustment = "model"``
            the blast share is adjusted for it and the cut-offs decide on the adjusted interval
            (:mod:`wsi_screen.blast`). None (e.g. reviewed counts): the count's interval.
        unfamiliar: per cell, whether it is unlike every class the model learned (its novelty
            above the model's fitted threshold); summarised in ``qc.unfamiliar`` with the
            figures that rest on such cells. None: the model has no novelty reference.

    Returns:
        A plain dict with ``cells_detected``, ``cells_counted``, ``differential``, ``excluded``,
        ``blast``, ``me_ratio``, ``histogram``, ``flags`` and ``qc``.
    """
    n = len(labels)
    names = list(class_names)
    model = list(class_names if model_classes is None else model_classes)
    counts = {c: 0 for c in names}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    excluded = set(cfg.excluded_classes)
    counted_classes = [c for c in counts if c not in excluded]
    counted = sum(counts[c] for c in counted_classes)

    differential = {
        c: {
            "count": counts[c],
            "percent": pct(counts[c], counted),
            "ci95": proportion_ci(counts[c], counted, cfg.ci_method),
        }
        for c in counted_classes
    }
    excluded_block = {
        c: {"count": counts[c], "percent_of_detected": pct(counts[c], n)} for c in names if c in excluded
    }
    blast = blast_block(counts, probs, names, counted, cfg, model, blast_rates)
    me = _me_ratio(counts, names, cfg, model)
    conf = probs.max(axis=1) if n else np.zeros(0)
    low_conf = float((conf < cfg.low_confidence).mean()) if n else 0.0
    flags = [
        *blast_flags(blast, counted, cfg, blast_rates),
        _hairy_flag(labels, conf, names, counted, cfg, model),
    ]
    flags.append(
        Flag(
            "too_few_cells",
            RAISED if counted < cfg.min_cells else NOT_RAISED,
            float(counted),
            float(cfg.min_cells),
            f"{counted} cells counted; at least {cfg.min_cells} needed for an adequate differential",
        )
    )
    art, nif = cfg.artefact_class, cfg.not_identifiable_class
    art_pct = pct(counts.get(art, 0), n)
    if art in names:
        art_status = RAISED if (art_pct or 0.0) > cfg.max_artefact_percent else NOT_RAISED
        art_msg = f"share of detections classified as artefact ({art})" + (
            "; check the smear and focus"
            if art_status == RAISED
            else f": within {cfg.max_artefact_percent:g} %"
        )
        art_status, art_msg = _lower_bound(art_status, art_msg, art, model)
    else:
        art_status, art_pct = NOT_ASSESSABLE, None
        art_msg = f"the model has no {art} class: artefacts cannot be assessed"
    flags.append(Flag("many_artefacts", art_status, art_pct, cfg.max_artefact_percent, art_msg))
    qc_domain = domain_qc(domain, cfg.domain_margin)
    flags = gate_flags(flags, qc_domain, cfg)
    qc = {
        "cells_detected": n,
        "cells_counted": counted,
        "min_cells": cfg.min_cells,
        "count_adequate": counted >= cfg.min_cells,
        "low_confidence_threshold": cfg.low_confidence,
        "low_confidence_fraction": round(low_conf, 4),
        "mean_confidence": round(float(conf.mean()), 4) if n else None,
        "artefact_fraction": None if art not in names or not n else round(counts[art] / n, 4),
        "not_identifiable_fraction": None if nif not in names or not n else round(counts[nif] / n, 4),
        "classes_not_covered": sorted(set(MATEK_CLASSES) - set(model)),
        "domain": qc_domain,
        "unfamiliar": unfamiliar_qc(labels, unfamiliar, counted_classes, cfg),
    }
    return {
        "cells_detected": n,
        "cells_counted": counted,
        "differential": differential,
        "excluded": excluded_block,
        "blast": blast,
        "me_ratio": me,
        "histogram": {c: pct(counts[c], n) for c in names},
        "flags": [asdict(f) for f in flags],
        "qc": qc,
    }


def unfamiliar_qc(
    labels: list[str], unfamiliar: NDArray[np.bool_] | None, counted_classes: list[str], cfg: AggregateConfig
) -> dict[str, Any] | None:
    """How many cells are unfamiliar, how many of them are counted, and what they were called.

    ``depends`` names the figures whose counts include unfamiliar cells (each a guess of the
    model's): the blast % when a blast-class call is unfamiliar, the M:E ratio for myeloid or
    erythroid calls, and every differential class with one.
    """
    if unfamiliar is None:
        return None
    flagged = [lab for lab, u in zip(labels, np.asarray(unfamiliar, dtype=bool).tolist(), strict=True) if u]
    counted = [lab for lab in flagged if lab in counted_classes]
    by_class = {c: counted.count(c) for c in sorted(set(counted))}
    depends = [f"differential {c}" for c in by_class]
    if any(c in cfg.blast_classes for c in by_class):
        depends.insert(0, "blast %")
    if any(c in cfg.myeloid_classes or c in cfg.erythroid_classes for c in by_class):
        depends.append("M:E ratio")
    n_counted = len([lab for lab in labels if lab in counted_classes])
    return {
        "n": len(flagged),
        "n_counted": len(counted),
        "fraction_of_counted": round(len(counted) / n_counted, 4) if n_counted else None,
        "counted_by_class": by_class,
        "depends": depends,
        "note": "unfamiliar cells are unlike every class the model learned; their calls are guesses "
        "and come first in the review queue",
    }


def _lower_bound(status: str, msg: str, cls: str, model: list[str]) -> tuple[str, str]:
    """A count of a class the model cannot call holds only reviewed cells: only a raised flag is known."""
    if cls in model or status not in (NOT_RAISED, INDETERMINATE):
        return status, msg
    return (
        NOT_ASSESSABLE,
        f"{msg}; a lower bound only: the model has no {cls} class, only reviewed cells count",
    )


def _me_ratio(
    counts: dict[str, int], names: list[str], cfg: AggregateConfig, model: list[str]
) -> dict[str, Any]:
    my = [c for c in cfg.myeloid_classes if c in names]
    er = [c for c in cfg.erythroid_classes if c in names]
    m = sum(counts[c] for c in my)
    e = sum(counts[c] for c in er)
    if not er or not my:
        status, value = NOT_ASSESSABLE, None
        msg = "the model lacks erythroid classes" if not er else "the model lacks myeloid classes"
    elif e == 0:
        status, value, msg = "undefined", None, "no erythroid cells counted"
    else:
        status, value, msg = "assessed", round(m / e, 3), f"{m} myeloid : {e} erythroid"
        if review_only := [c for c in [*my, *er] if c not in model]:
            msg += f"; {', '.join(review_only)} from review only (the model cannot call them)"
    return {
        "status": status,
        "value": value,
        "myeloid": m,
        "erythroid": e,
        "myeloid_classes": my,
        "erythroid_classes": er,
        "message": msg,
    }


def _hairy_flag(
    labels: list[str],
    conf: NDArray[np.floating[Any]],
    names: list[str],
    counted: int,
    cfg: AggregateConfig,
    model: list[str],
) -> Flag:
    hc = cfg.hairy_cell
    thr = float(hc.min_percent)
    if hc.hairy_class not in names:
        why = f"the model has no {hc.hairy_class} class: hairy cells cannot be assessed"
        return Flag("hairy_cells", NOT_ASSESSABLE, None, thr, why)
    if counted == 0:
        return Flag("hairy_cells", NOT_ASSESSABLE, None, thr, "no cells counted")
    k = sum(
        1 for lab, c in zip(labels, conf, strict=True) if lab == hc.hairy_class and c >= hc.min_confidence
    )
    pct = 100.0 * k / counted
    ci = proportion_ci(k, counted, cfg.ci_method)
    assert ci is not None  # noqa: S101 - counted > 0
    # three states as the blast cut-offs: raised when the count and the lower bound reach the minimum
    status = RAISED if k >= hc.min_count and ci[0] >= thr else NOT_RAISED if ci[1] < thr else INDETERMINATE
    msg = (
        f"{k} {hc.hairy_class} calls with confidence >= {hc.min_confidence} ({pct:.1f} % of {counted}, "
        f"95 % CI {ci[0]:.1f}-{ci[1]:.1f}); flag needs >= {hc.min_count} cells and >= {hc.min_percent} %"
    )
    more = cells_to_decide(k, counted, thr, cfg.ci_method) if status == INDETERMINATE else None
    if status == INDETERMINATE:
        msg += f"; indeterminate: the 95 % interval spans {hc.min_percent} %" + (
            f"; about {more} more counted cells at this proportion would decide it" if more else ""
        )
    status, msg = _lower_bound(status, msg, hc.hairy_class, model)
    return Flag("hairy_cells", status, round(pct, 3), thr, msg, ci, more if status == INDETERMINATE else None)
