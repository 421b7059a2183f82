"""Cells detected in regions a slide's count leaves out: how many, and why (clumped, thick, blurred ...).

On a slide only cells of counted regions feed the figures, so ``cells_detected`` counts those. A dense
slide whose regions were all excluded as clumped then read "0 cells detected" while the detector had
found hundreds. :func:`excluded_cells` gives the numbers for ``qc.regions.excluded_cells`` and, when
no detected cell lies in a counted region, the warning the console, report.json and the page show.
"""

from __future__ import annotations

from typing import Any

import polars as pl

EXCLUDED = "excluded"


def excluded_cells(report: dict[str, Any], frame: pl.DataFrame) -> dict[str, Any] | None:
    """Detected cells in excluded regions, by reason; None when the regions do not decide counting.

    Returns:
        ``detected`` (every detection), ``n`` (in excluded regions), ``by_reason`` (cells per
        reason; a region may have several) and ``warning`` (a sentence, or None when some cells lie
        in counted regions).
    """
    block = (report.get("qc") or {}).get("regions") or {}
    if not block.get("decides_counting") or "region" not in frame.columns:
        return None
    regions = {r["id"]: r for r in report.get("regions") or []}
    by_reason: dict[str, int] = {}
    n = 0
    for rid in frame["region"].to_list():
        region = regions.get(rid)
        if region is None or region.get("status") != EXCLUDED:
            continue
        n += 1
        for reason in region.get("reasons") or ["excluded"]:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    if n == 0:
        return None
    detected = frame.height
    why = ", ".join(f"{reason} {k}" for reason, k in sorted(by_reason.items(), key=lambda kv: -kv[1]))
    warning = None
    if n == detected:
        warning = (
            f"{detected} cell(s) detected, all {n} in regions excluded from the count ({why}): no cell "
            f"could be counted; the figures rest on none of them (see the regions in the viewer)"
        )
    return {"detected": detected, "n": n, "by_reason": by_reason, "warning": warning}


def detected_text(report: dict[str, Any]) -> str:
    """``224 cells detected (224 in excluded regions: clumped 224)``, or ``N cells detected`` (``1 cell``)."""
    info = ((report.get("qc") or {}).get("regions") or {}).get("excluded_cells")
    if not isinstance(info, dict) or not info.get("n"):
        return f"{cells(report['cells_detected'])} detected"
    why = ", ".join(f"{reason} {k}" for reason, k in info.get("by_reason", {}).items())
    return f"{cells(info['detected'])} detected ({info['n']} in excluded regions: {why})"


def cells(n: object) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{n} cell" if n == 1 else f"{n} cells"


def input_reasons(report: dict[str, Any]) -> list[str]:
    """Banner lines about the input that no review changes: no detected cell in a counted region."""
    info = ((report.get("qc") or {}).get("regions") or {}).get("excluded_cells")
    return [str(info["warning"])] if isinstance(info, dict) and info.get("warning") else []
