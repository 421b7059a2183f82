"""Count region by region, best first, and stop once every blast cut-off is decided.

The morphologist's way of counting a slide or a case: start in the best area, count, and stop when
the answer is clear (or the countable area is used up). :func:`count_until_decided` walks the
cells group by group (a group is a region, best quality first), counts those of the differential
and looks at the rule's look counts (``stopping.min_cells``, then every ``look_every`` cells);
at the first look where :meth:`~wsi_screen.stopping.SequentialRule.decided` holds for every cut-off
it stops. Cells after the stop are not counted: the report's figures are those of the cells used.

The rule runs on the screened cells after classification, so it decides which cells count and
what the report states; it does not yet save the screening time of the regions left unused.
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from wsi_screen.config import AggregateConfig
from wsi_screen.config import StoppingConfig
from wsi_screen.stopping import SequentialRule

STOPPED, EXHAUSTED = "decided", "regions used up"


@dataclass(frozen=True)
class StopOutcome:
    """Which cells the rule used, and what the report says about where and why it stopped."""

    used: list[bool]
    info: dict[str, Any]


def count_until_decided(
    groups: Sequence[tuple[Hashable, Sequence[int]]],
    labels: Sequence[str],
    agg: AggregateConfig,
    cfg: StoppingConfig,
) -> StopOutcome:
    """Walk ``groups`` (best first) cell by cell until every blast cut-off is decided.

    Args:
        groups: ``(key, cell indices)`` per region in counting order; cells outside every group
            are never used.
        labels: each cell's class (indices into it).
        agg: class groups and cut-offs (excluded classes are examined but not counted).
        cfg: the rule's settings.

    Returns:
        Per cell whether it was used, and the ``stopping`` block of the report: the rule, whether
        and why it stopped, cells examined and counted, regions used, the stop's region, and the
        rule's interval and decisions at the last count.
    """
    rule = SequentialRule(cfg.method, cfg.alpha, cfg.min_cells, cfg.look_every)
    excluded, blast = set(agg.excluded_classes), set(agg.blast_classes)
    cuts = list(agg.blast_cutoffs_percent)
    used = [False] * len(labels)
    n = k = regions = 0
    stop_key: Hashable | None = None
    for key, cells in groups:
        regions += 1
        for i in cells:
            used[i] = True
            if labels[i] in excluded:
                continue
            n += 1
            k += labels[i] in blast
            if rule.look_number(n) is not None and rule.decided([(k, c) for c in cuts], n):
                stop_key = key
                break
        if stop_key is not None:
            break
    decisions = rule.decisions(k, n, cuts) if n else {}
    info = {
        "rule": {k_: v for k_, v in asdict(cfg).items() if k_ != "enabled"},
        "stopped": stop_key is not None,
        "reason": STOPPED if stop_key is not None else EXHAUSTED,
        "cells_examined": sum(used),
        "cells_counted": n,
        "blast_count": k,
        "regions_used": regions if stop_key is not None else len(groups),
        "regions_available": len(groups),
        "stopped_in_region": stop_key,
        "interval": rule.interval(k, n) if n else None,
        "decisions": {f"blasts_ge_{c:g}pct": s for c, s in decisions.items()},
    }
    return StopOutcome(used, info)


def region_groups(regions: Any, cells: Sequence[Any]) -> list[tuple[int, list[int]]]:
    """The counted regions of a :class:`~wsi_screen.regions.RegionMap`, best first, with their cells.

    Within a region cells go top to bottom, left to right (as a morphologist meanders).
    """
    by_region: dict[int, list[int]] = {}
    for i, c in enumerate(cells):
        by_region.setdefault(regions.region_at(c.x, c.y), []).append(i)
    return [
        (r.index, sorted(by_region.get(r.index, []), key=lambda i: (cells[i].y, cells[i].x)))
        for r in regions.counted()
    ]


def case_groups(
    fields: Sequence[tuple[str, Sequence[Any], Sequence[dict[str, Any]]]],
) -> list[tuple[tuple[str, int], list[int]]]:
    """The regions of a case's counted fields, best quality first, with their cells' pooled indices.

    Args:
        fields: per field, in pooling order: its name, its cells and its report's ``regions``.
    """
    ranked: list[tuple[float, int, int, tuple[str, int], list[int]]] = []
    offset = 0
    for f, (name, cells, regs) in enumerate(fields):
        by_region: dict[int, list[int]] = {}
        for j, c in enumerate(cells):
            rid = next((r["id"] for r in regs if r["x"] <= c.x < r["x"] + r["width"]
                        and r["y"] <= c.y < r["y"] + r["height"]), -1)  # fmt: skip
            by_region.setdefault(rid, []).append(offset + j)
        quality = {r["id"]: float((r.get("scores") or {}).get("quality") or 0.0) for r in regs}
        for rid, idx in by_region.items():
            order = sorted(idx, key=lambda i: (cells[i - offset].y, cells[i - offset].x))
            ranked.append((-quality.get(rid, 0.0), f, rid, (name, rid), order))
        offset += len(cells)
    ranked.sort(key=lambda g: g[:3])
    return [(key, idx) for _, _, _, key, idx in ranked]


def stopping_text(info: dict[str, Any]) -> str:
    """One line for the page: the rule, where it stopped and why."""
    rule = info["rule"]
    head = (
        f"Stopping rule {rule['method']} (alpha {rule['alpha']:g}, first look at {rule['min_cells']} "
        f"counted cells, then every {rule['look_every']})"
    )
    if info["stopped"]:
        return (
            f"{head}: stopped after {info['cells_counted']} counted cells in {info['regions_used']} of "
            f"{info['regions_available']} countable regions, every cut-off decided."
        )
    return (
        f"{head}: all {info['regions_available']} countable regions used ({info['cells_counted']} counted "
        "cells) before every cut-off was decided."
    )
