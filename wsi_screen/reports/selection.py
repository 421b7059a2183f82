"""Which cells a report shows: the review queue, per-class galleries, and class colours.

The review queue puts first the cells whose reclassification would most change a figure the
morphologist signs off: cells near the blast / non-blast boundary by summed blast probability
(Matek 2019), more so when a blast cut-off lies inside the 95 % interval, and hairy-cell calls
near the flag's confidence threshold; low-confidence calls fill the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from wsi_screen.config import AggregateConfig
from wsi_screen.reports.palette import class_style


def class_color(code: str) -> tuple[int, int, int]:
    """RGB colour of a class, from the colour-blind-safe palette (:mod:`wsi_screen.reports.palette`).

    The page's viewer, legend and swatches and the QuPath GeoJSON all use it.
    """
    return class_style(code).rgb


def hex_color(code: str) -> str:
    """``#rrggbb`` colour of a class."""
    return class_style(code).color


@dataclass(frozen=True)
class QueueItem:
    """One cell in the review queue and why it is there."""

    cell_id: int
    priority: float
    reason: str


def prob_matrix(frame: pl.DataFrame, class_names: list[str]) -> NDArray[np.float32]:
    """N x C probabilities from the ``prob_<CLASS>`` columns of cells.parquet."""
    if frame.height == 0:
        return np.zeros((0, len(class_names)), dtype=np.float32)
    return frame.select([f"prob_{c}" for c in class_names]).to_numpy().astype(np.float32)


def final_labels(frame: pl.DataFrame) -> list[str]:
    """Reviewed class where a reviewer set one, else the predicted class."""
    if "reviewed_class" not in frame.columns:
        return frame["predicted_class"].to_list()
    return frame.select(pl.coalesce("reviewed_class", "predicted_class")).to_series().to_list()


def blast_probability(
    probs: NDArray[np.float32], class_names: list[str], cfg: AggregateConfig
) -> NDArray[np.float32]:
    """Per-cell summed probability of the blast-equivalent classes (zeros if the model has none)."""
    idx = [class_names.index(c) for c in cfg.blast_classes if c in class_names]
    if not idx or len(probs) == 0:
        return np.zeros(len(probs), dtype=np.float32)
    return np.asarray(probs[:, idx].sum(axis=1), dtype=np.float32)


def review_queue(
    frame: pl.DataFrame, report: dict[str, Any], cfg: AggregateConfig, *, limit: int
) -> list[QueueItem]:
    """Rank the cells whose reclassification would most change the blast % or a flag.

    Unfamiliar cells (``cells.parquet`` column ``unfamiliar``: unlike every class the model
    learned) come first, most novel first: the model's call on them is a guess.

    Args:
        frame: cells.parquet content.
        report: report.json content (for the blast interval and the model's classes).
        cfg: the aggregation rules of the report.
        limit: maximum queue length.

    Returns:
        Queue items, highest priority first.
    """
    names = list(report["model"]["classes"])
    if frame.height == 0 or limit <= 0:
        return []
    probs = prob_matrix(frame, names)
    ids = frame["cell_id"].to_numpy()
    conf = probs.max(axis=1)
    best: dict[int, QueueItem] = {}

    def offer(i: int, priority: float, reason: str) -> None:
        cid = int(ids[i])
        if cid not in best or best[cid].priority < priority:
            best[cid] = QueueItem(cid, round(float(priority), 4), reason)

    blast = report.get("blast") or {}
    ci = blast.get("ci95")
    near_cut = [c for c in cfg.blast_cutoffs_percent if ci and ci[0] <= c <= ci[1]]
    if any(c in names for c in cfg.blast_classes):
        pb = blast_probability(probs, names, cfg)
        boost = 1.0 if near_cut else 0.0
        cut_note = f"; a {near_cut[0]:g} % cut-off lies in the blast 95 % interval" if near_cut else ""
        for i in np.flatnonzero((pb >= 0.15) & (pb <= 0.85)):
            offer(int(i), 1.0 + boost + (1.0 - abs(2.0 * float(pb[i]) - 1.0)),
                  f"blast boundary: P(blast) = {pb[i]:.2f}{cut_note}")  # fmt: skip
    hc = cfg.hairy_cell
    if hc.hairy_class in names:
        ph = probs[:, names.index(hc.hairy_class)]
        lo, hi = max(0.0, hc.min_confidence - 0.25), min(1.0, hc.min_confidence + 0.25)
        for i in np.flatnonzero((ph >= lo) & (ph <= hi)):
            closeness = 1.0 - abs(float(ph[i]) - hc.min_confidence) / 0.25
            offer(
                int(i), 1.5 + closeness, f"hairy-cell call near threshold: P({hc.hairy_class}) = {ph[i]:.2f}"
            )
    for i in np.flatnonzero(conf < cfg.low_confidence):
        offer(int(i), 1.0 - float(conf[i]), f"low confidence: {conf[i]:.2f}")
    if "unfamiliar" in frame.columns and "novelty" in frame.columns:
        # unlike any class the model learned: its call is a guess, so these come first
        flagged = frame["unfamiliar"].fill_null(False).to_numpy()
        novelty = frame["novelty"].fill_null(0.0).to_numpy()
        for i in np.flatnonzero(flagged):
            offer(
                int(i),
                4.0 + min(1.0, float(novelty[i]) / 100.0),
                f"unfamiliar cell: unlike the classes the model learned (novelty {novelty[i]:.1f})",
            )
    return sorted(best.values(), key=lambda q: (-q.priority, q.cell_id))[:limit]


def gallery_ids(frame: pl.DataFrame, labels: list[str], *, per_class: int) -> dict[str, list[int]]:
    """Cell ids per (final) class, most confident first, at most ``per_class`` each."""
    if frame.height == 0 or per_class <= 0:
        return {}
    conf = frame["confidence"].to_numpy()
    ids = frame["cell_id"].to_numpy()
    out: dict[str, list[int]] = {}
    for i in np.argsort(-conf, kind="stable"):
        lab = labels[i]
        bucket = out.setdefault(lab, [])
        if len(bucket) < per_class:
            bucket.append(int(ids[i]))
    return out
