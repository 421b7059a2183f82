"""Aggregation: differential count, blast %, M:E ratio, flags and QC from per-cell calls.

Every rule comes from :class:`AggregateConfig`; a flag whose class the model does not have is
``not_assessable``, never ``not_raised``. :func:`decide` is the three-state rule of a cut-off on its
95 % interval (``raised`` when the lower bound reaches the cut-off, ``not_raised`` when the upper
bound is below it, ``indeterminate`` when the interval spans it) and :func:`cells_to_decide` how
many more counted cells would decide it if the proportion stayed where it is.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaincinv
from scipy.special import ndtri
from scipy.stats import binomtest

from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config import AggregateConfig
from wsi_screen.domain_gate import domain_qc
from wsi_screen.domain_gate import gate_flags
from wsi_screen.errors import ConfigError

RAISED, NOT_RAISED, INDETERMINATE, NOT_ASSESSABLE = "raised", "not_raised", "indeterminate", "not_assessable"
MAX_CELLS_TO_DECIDE = 10_000_000
"""Beyond this many counted cells a decision is reported as out of reach."""


def proportion_ci(k: int, n: int, method: str = "wilson") -> list[float] | None:
    """95 % interval of k/n in percent (Wilson score or Clopper-Pearson exact); None if n == 0."""
    if n <= 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method=method)
    return [round(100.0 * float(ci.low), 3), round(100.0 * float(ci.high), 3)]


@dataclass(frozen=True)
class Flag:
    """A screening flag with its evidence."""

    name: str
    status: str
    value: float | None
    threshold: float | None
    message: str
    ci95: list[float] | None = None
    more_cells_to_decide: int | None = None
    """For an ``indeterminate`` flag: counted cells to add before the interval, at the same
    proportion, would exclude the cut-off (None: decided, or not decidable by counting more)."""


def decide(ci: list[float] | None, cut: float) -> str:
    """Three-state decision of a cut-off from a 95 % interval in percent.

    Example:
        >>> decide([1.7, 20.1], 5.0), decide([5.0, 9.1], 5.0), decide([0.2, 4.99], 5.0)
        ('indeterminate', 'raised', 'not_raised')
    """
    if ci is None:
        return NOT_ASSESSABLE
    if ci[0] >= cut:
        return RAISED
    return NOT_RAISED if ci[1] < cut else INDETERMINATE


def _bounds(k: float, n: int, method: str) -> tuple[float, float]:
    """95 % interval (fractions) of a proportion k/n for a real-valued k (the formulas of :func:`proportion_ci`)."""
    if method == "exact":
        lo = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, 0.025))
        hi = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 0.975))
        return lo, hi
    z, p = float(ndtri(0.975)), k / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z / (2 * (n + z * z)) * float(np.sqrt(4 * n * p * (1 - p) + z * z))
    return (0.0 if k <= 0 else centre - half), (1.0 if k >= n else centre + half)


def cells_to_decide(k: int, n: int, cut_percent: float, method: str = "wilson") -> int | None:
    """Counted cells to add to ``n`` before the interval at the proportion ``k / n`` excludes the cut-off.

    Returns 0 when it already does, None when the proportion equals the cut-off (no count decides
    it) or more than :data:`MAX_CELLS_TO_DECIDE` cells would be needed.

    Example:
        >>> cells_to_decide(2, 32, 5.0)  # 6.25 % of 32 cells: 95 % CI 1.7-20.1 %
        1136
    """
    if n <= 0:
        return None
    p, c = k / n, cut_percent / 100.0
    if p == c:
        return None

    def decided(total: int) -> bool:
        lo, hi = _bounds(p * total, total, method)
        return lo >= c if p > c else hi < c

    if decided(n):
        return 0
    top = 2 * n
    while not decided(top):
        if top > MAX_CELLS_TO_DECIDE:
            return None
        top *= 2
    low = top // 2  # not decided at low, decided at top
    while top - low > 1:
        mid = (low + top) // 2
        low, top = (low, mid) if decided(mid) else (mid, top)
    return top - n


def _pct(k: float, n: float) -> float | None:
    return None if n <= 0 else round(100.0 * k / n, 3)


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
            "percent": _pct(counts[c], counted),
            "ci95": proportion_ci(counts[c], counted, cfg.ci_method),
        }
        for c in counted_classes
    }
    excluded_block = {
        c: {"count": counts[c], "percent_of_detected": _pct(counts[c], n)} for c in names if c in excluded
    }
    blast = _blast(counts, probs, names, counted, cfg, model)
    me = _me_ratio(counts, names, cfg, model)
    conf = probs.max(axis=1) if n else np.zeros(0)
    low_conf = float((conf < cfg.low_confidence).mean()) if n else 0.0
    flags = [*_blast_flags(blast, counted, cfg), _hairy_flag(labels, conf, names, counted, cfg, model)]
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
    art_pct = _pct(counts.get(art, 0), n)
    if art in names:
        art_status = RAISED if (art_pct or 0.0) > cfg.max_artefact_percent else NOT_RAISED
        art_msg = f"share of detections classified as artefact ({art}); check the smear and focus"
        art_status, art_msg = _lower_bound(art_status, art_msg, art, model)
    else:
        art_status, art_pct = NOT_ASSESSABLE, None
        art_msg = f"the model has no {art} class: artefacts cannot be assessed"
    flags.append(Flag("many_artefacts", art_status, art_pct, cfg.max_artefact_percent, art_msg))
    qc_domain = domain_qc(domain)
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
    }
    return {
        "cells_detected": n,
        "cells_counted": counted,
        "differential": differential,
        "excluded": excluded_block,
        "blast": blast,
        "me_ratio": me,
        "histogram": {c: _pct(counts[c], n) for c in names},
        "flags": [asdict(f) for f in flags],
        "qc": qc,
    }


def _lower_bound(status: str, msg: str, cls: str, model: list[str]) -> tuple[str, str]:
    """A count of a class the model cannot call holds only reviewed cells: only a raised flag is known."""
    if cls in model or status not in (NOT_RAISED, INDETERMINATE):
        return status, msg
    return (
        NOT_ASSESSABLE,
        f"{msg}; a lower bound only: the model has no {cls} class, only reviewed cells count",
    )


def _blast(
    counts: dict[str, int],
    probs: NDArray[np.float32],
    names: list[str],
    counted: int,
    cfg: AggregateConfig,
    model: list[str],
) -> dict[str, Any]:
    present = [c for c in cfg.blast_classes if c in names]
    if not present:
        return {
            "status": NOT_ASSESSABLE,
            "classes": list(cfg.blast_classes),
            "percent": None,
            "ci95": None,
            "percent_prob": None,
            "count": None,
            "message": f"the model has none of the blast-equivalent classes {', '.join(cfg.blast_classes)}",
        }
    k = sum(counts[c] for c in present)
    idx_blast = [names.index(c) for c in present]
    idx_counted = [i for i, c in enumerate(names) if c not in set(cfg.excluded_classes)]
    p_blast = float(probs[:, idx_blast].sum()) if len(probs) else 0.0
    p_counted = float(probs[:, idx_counted].sum()) if len(probs) else 0.0
    missing = [c for c in cfg.blast_classes if c not in model]
    return {
        "status": "assessed" if counted else NOT_ASSESSABLE,
        "classes": present,
        "classes_missing_from_model": missing,
        "count": k,
        "percent": _pct(k, counted),
        "ci95": proportion_ci(k, counted, cfg.ci_method),
        # with no counted cell the ratio would be one of leftover probabilities (e.g. of artefacts)
        "percent_prob": _pct(p_blast, p_counted) if counted else None,
        "expected_count_prob": round(p_blast, 3),
    }


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


def _blast_flags(blast: dict[str, Any], counted: int, cfg: AggregateConfig) -> list[Flag]:
    flags = []
    for cut in cfg.blast_cutoffs_percent:
        name = f"blasts_ge_{cut:g}pct"
        if blast["percent"] is None:
            why = blast.get("message") or "no cells counted"
            flags.append(Flag(name, NOT_ASSESSABLE, None, cut, f"blast % not assessable: {why}"))
            continue
        pct, ci = blast["percent"], blast["ci95"]
        missing = blast.get("classes_missing_from_model") or []
        status = decide(ci, cut)
        more = None
        note = ""
        if status == INDETERMINATE:
            more = cells_to_decide(int(blast["count"]), counted, cut, cfg.ci_method)
            note = (
                f"; indeterminate: the 95 % interval spans the cut-off; about {more} more counted cells "
                "at this proportion would decide it"
                if more
                else "; indeterminate: the 95 % interval spans the cut-off and counting more cells "
                "at this proportion cannot decide it"
            )
        if missing and status in (NOT_RAISED, INDETERMINATE):
            # the model cannot call some blast-equivalent classes: the % is only a lower bound
            status, more = NOT_ASSESSABLE, None
            note += f"; a lower bound only: the model has no {', '.join(missing)} class"
        elif missing:
            note += f"; the model has no {', '.join(missing)} class, so the true % may be higher"
        if counted < cfg.min_cells:
            note += f"; only {counted} cells counted (minimum {cfg.min_cells})"
        flags.append(
            Flag(
                name,
                status,
                pct,
                cut,
                f"blasts {pct:.1f} % (95 % CI {ci[0]:.1f}-{ci[1]:.1f}) of {counted} cells{note}",
                ci,
                more,
            )
        )
    return flags


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
