"""Blast share of the counted cells, its interval, and the blast cut-off flags.

The count-based share (cells *called* blast over counted cells) carries a binomial interval: the
error of counting, nothing else. When the model carries its measured blast confusion
(:class:`~wsi_screen.blast_rates.BlastRates`) and ``aggregate.blast_adjustment = "model"``, the
share is also corrected for that confusion (Rogan-Gladen: ``p = (a - f) / (s - f)`` for the called
share ``a``, sensitivity ``s`` and false-blast rate ``f``), and its 95 % interval carries the
uncertainty of all three: an adjusted Wald interval (delta method; Agresti-Coull pseudo-counts,
``z^2 / 2`` calls to the count and one success and one failure to each rate, in the manner of
Lang & Reiczigel 2014), clipped to 0-100 %. Its coverage, simulated in
``tests/test_blast_adjustment.py`` and ``docs/benchmarks.md``, is 93-99 % over true shares of
0-50 %, 100-3,000 counted cells and rates measured on 30-90 blasts (below 95 % only at shares of
35 % and more with rates from 30-49 blasts, where the sensitivity's uncertainty rules). The cut-off flags then decide
on that interval. The rates hold for cells like the ones they were measured on: a mix of other
cells unlike the validation mix moves the false-blast rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.blast_rates import BlastRates
from wsi_screen.config import AggregateConfig
from wsi_screen.intervals import INDETERMINATE
from wsi_screen.intervals import NOT_ASSESSABLE
from wsi_screen.intervals import NOT_RAISED
from wsi_screen.intervals import Flag
from wsi_screen.intervals import cells_to_decide
from wsi_screen.intervals import decide
from wsi_screen.intervals import pct
from wsi_screen.intervals import proportion_ci

__all__ = ["adjusted_bounds", "blast_block", "blast_flags"]

Z = 1.959963984540054
"""Two-sided 95 % normal quantile."""


NO_RATES = "no measured blast rates apply (the model carries none, or the counts are reviewed)"
"""Why a count is not adjusted without rates (the review page's live figures say the same)."""


def _corrected(a: float, s: float, f: float) -> float:
    """Rogan-Gladen corrected share, clipped to [0, 1] (``a`` itself when the rates say nothing)."""
    return a if s <= f else float(np.clip((a - f) / (s - f), 0.0, 1.0))


def adjusted_bounds(k: float, n: int, rates: BlastRates) -> tuple[float, float]:
    """95 % interval (fractions) of the true blast share from ``k`` blast calls of ``n`` counted cells.

    Example:
        >>> r = BlastRates(("BLA",), ("ART",), 100, 60, 400, 8, "")
        >>> lo, hi = adjusted_bounds(60, 500, r)
        >>> round(lo, 3), round(hi, 3)
        (0.113, 0.236)
    """
    z2 = Z * Z
    n_a, n_s, n_f = n + z2, rates.blasts + 2, rates.others + 2
    a = (k + z2 / 2) / n_a
    s = (rates.blasts_called_blast + 1) / n_s
    f = (rates.others_called_blast + 1) / n_f
    if s <= f:  # the calls say nothing about blasts
        return 0.0, 1.0
    p = (a - f) / (s - f)
    pc = min(max(p, 0.0), 1.0)
    var = (a * (1 - a) / n_a + pc * pc * s * (1 - s) / n_s + (1 - pc) ** 2 * f * (1 - f) / n_f) / (s - f) ** 2
    half = Z * float(np.sqrt(var))
    return max(0.0, p - half), min(1.0, p + half)


def _usable(rates: BlastRates | None, present: list[str], cfg: AggregateConfig) -> str | None:
    """Why the rates cannot adjust this count (None: they can)."""
    if cfg.blast_adjustment == "none":
        return "aggregate.blast_adjustment is 'none'"
    if rates is None:
        return NO_RATES
    if set(rates.blast_classes) != set(present) or set(rates.excluded_classes) != set(cfg.excluded_classes):
        return (
            f"the model's blast rates were measured for blast classes {', '.join(rates.blast_classes)} "
            f"and excluded classes {', '.join(rates.excluded_classes)}; the configuration differs"
        )
    if not rates.blasts or not rates.others:
        return "the model's blast rates hold no blasts or no other cells"
    return None


def _adjusted(
    k: int, counted: int, rates: BlastRates | None, present: list[str], cfg: AggregateConfig
) -> dict[str, Any]:
    why = _usable(rates, present, cfg)
    if why is not None or not counted:
        return {"applied": False, "reason": why or "no cells counted"}
    assert rates is not None  # noqa: S101 - _usable checked it
    s, f = rates.sensitivity, rates.false_blast_rate
    lo, hi = adjusted_bounds(k, counted, rates)
    return {
        "applied": True,
        "percent": round(100.0 * _corrected(k / counted, s, f), 3),
        "ci95": [round(100.0 * lo, 3), round(100.0 * hi, 3)],
        "sensitivity": round(s, 4),
        "false_blast_rate": round(f, 4),
        "rates_counts": [rates.blasts_called_blast, rates.blasts, rates.others_called_blast, rates.others],
        "method": "Rogan-Gladen; adjusted Wald 95 % interval carrying the count's and both rates' uncertainty",
    }


def blast_block(
    counts: dict[str, int],
    probs: NDArray[np.float32],
    names: list[str],
    counted: int,
    cfg: AggregateConfig,
    model: list[str],
    rates: BlastRates | None = None,
) -> dict[str, Any]:
    """The report's ``blast`` block: count, share and interval, by summed probability, and adjusted."""
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
        "percent": pct(k, counted),
        "ci95": proportion_ci(k, counted, cfg.ci_method),
        # with no counted cell the ratio would be one of leftover probabilities (e.g. of artefacts)
        "percent_prob": pct(p_blast, p_counted) if counted else None,
        "expected_count_prob": round(p_blast, 3),
        "adjusted": _adjusted(k, counted, rates, present, cfg),
    }


def _indeterminate_note(more: int | None, adjusted: bool) -> str:
    if more:
        return (
            f"; indeterminate: the 95 % interval spans the cut-off; about {more} more counted cells "
            "at this proportion would decide it"
        )
    why = " (the uncertainty of the model's measured blast rates alone spans it)" if adjusted else ""
    return (
        "; indeterminate: the 95 % interval spans the cut-off and counting more cells "
        f"at this proportion cannot decide it{why}"
    )


def blast_flags(
    blast: dict[str, Any], counted: int, cfg: AggregateConfig, rates: BlastRates | None = None
) -> list[Flag]:
    """One three-state flag per cut-off, on the adjusted interval when it applies, else the count's."""
    flags = []
    adj = blast.get("adjusted") or {}
    for cut in cfg.blast_cutoffs_percent:
        name = f"blasts_ge_{cut:g}pct"
        if blast["percent"] is None:
            why = blast.get("message") or "no cells counted"
            flags.append(Flag(name, NOT_ASSESSABLE, None, cut, f"blast % not assessable: {why}"))
            continue
        pct_, ci = blast["percent"], blast["ci95"]
        text = f"blasts {pct_:.1f} % (95 % CI {ci[0]:.1f}-{ci[1]:.1f}) of {counted} cells"
        if adj.get("applied") and rates is not None:
            value, ci = adj["percent"], adj["ci95"]
            text += (
                f" called blast; adjusted for the model's measured blast sensitivity "
                f"{adj['sensitivity']:.2f} and false-blast rate {adj['false_blast_rate']:.3f}: "
                f"{value:.1f} % (95 % CI {ci[0]:.1f}-{ci[1]:.1f})"
            )

            def interval(k: float, n: int, r: BlastRates = rates) -> tuple[float, float]:
                return adjusted_bounds(k, n, r)
        else:
            value, interval = pct_, None  # type: ignore[assignment]
        missing = blast.get("classes_missing_from_model") or []
        status = decide(ci, cut)
        more = None
        note = ""
        if status == INDETERMINATE:
            more = cells_to_decide(int(blast["count"]), counted, cut, cfg.ci_method, interval)
            note = _indeterminate_note(more, interval is not None)
        if missing and status in (NOT_RAISED, INDETERMINATE):
            # the model cannot call some blast-equivalent classes: the % is only a lower bound
            status, more = NOT_ASSESSABLE, None
            note += f"; a lower bound only: the model has no {', '.join(missing)} class"
        elif missing:
            note += f"; the model has no {', '.join(missing)} class, so the true % may be higher"
        if counted < cfg.min_cells:
            note += f"; only {counted} cells counted (minimum {cfg.min_cells})"
        flags.append(Flag(name, status, value, cut, text + note, ci, more))
    return flags
