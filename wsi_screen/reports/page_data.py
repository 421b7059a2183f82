"""What the report page's review scripts need, from report.json and cells.parquet.

The page's scripts hold no rule and no class list of their own: the review classes, their colours
and shapes, the aggregation rules (:func:`wsi_screen.reports.rules.page_rules`), the flag titles,
the classes each flag depends on, the per-cell figures aggregate needs and the viewer's tiles all
come from here, and so do the same texts in the server-side page (banner reasons, sign-off).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from wsi_screen.classes import class_label
from wsi_screen.config import AggregateConfig
from wsi_screen.domain_gate import domain_text
from wsi_screen.reports.deepzoom import DeepZoomImage
from wsi_screen.reports.excluded_cells import input_reasons
from wsi_screen.reports.palette import SHAPE_PATHS
from wsi_screen.reports.palette import class_styles
from wsi_screen.reports.reviewed import counted_rows
from wsi_screen.reports.reviewed import with_review_columns
from wsi_screen.reports.rules import configured_review_classes
from wsi_screen.reports.rules import page_rules
from wsi_screen.reports.rules import review_classes
from wsi_screen.reports.selection import prob_matrix
from wsi_screen.reports.signoff import audit_rows
from wsi_screen.reports.signoff import signoff_view
from wsi_screen.stopping_count import stopping_text

SHORTCUT_KEYS = "1234567890"
FLAG_TITLES = {
    "too_few_cells": "Too few cells",
    "hairy_cells": "Hairy cells (HCL)",
    "many_artefacts": "Many artefacts",
}


def flag_title(name: str) -> str:
    """The page's title of a flag (``blasts_ge_5pct`` -> ``Blasts ≥ 5 %``)."""
    if name in FLAG_TITLES:
        return FLAG_TITLES[name]
    if name.startswith("blasts_ge_") and name.endswith("pct"):
        return f"Blasts ≥ {name[10:-3]} %"
    return name


def flag_classes(report: dict[str, Any], cfg: AggregateConfig) -> dict[str, list[str]]:
    """The classes each flag (and the M:E ratio) is computed from: the page names those the model lacks."""
    out: dict[str, list[str]] = {}
    for f in report.get("flags") or []:
        name = f["name"]
        if name.startswith("blasts_ge_"):
            out[name] = list(cfg.blast_classes)
        elif name == "hairy_cells":
            out[name] = [cfg.hairy_cell.hairy_class]
        elif name == "many_artefacts":
            out[name] = [cfg.artefact_class]
        else:
            out[name] = []
    out["me_ratio"] = [*cfg.myeloid_classes, *cfg.erythroid_classes]
    return out


def banner_reasons(report: dict[str, Any]) -> list[str]:
    """Why the figures are not reportable as they stand (the page's live.js says the same live).

    An inadequate count, an input out of the model's domain (``qc.domain``) and undecided flags
    (``indeterminate``: the interval spans the cut-off).
    """
    qc = report.get("qc") or {}
    out = []
    if not qc.get("count_adequate", True):
        out.append(
            f"count inadequate: {report.get('cells_counted')} cells counted, at least {qc.get('min_cells')} needed"
        )
    out += domain_reasons(report) + input_reasons(report)
    undecided = [
        flag_title(f["name"]) for f in report.get("flags") or [] if f.get("status") == "indeterminate"
    ]
    if undecided:
        out.append(f"undecided: {', '.join(undecided)} (the 95 % interval spans the cut-off)")
    return out


def domain_reasons(report: dict[str, Any]) -> list[str]:
    """The domain judgement of a report as banner lines: out of domain or borderline (none otherwise)."""
    dom = (report.get("qc") or {}).get("domain")
    if not isinstance(dom, dict) or dom.get("status") not in ("out_of_domain", "borderline"):
        return []
    why = "; ".join(str(r) for r in dom.get("reasons") or []) or "unlike the model's training data"
    if dom.get("status") == "borderline":
        return [f"domain check borderline, blast and hairy-cell flags not decided: {domain_text(dom)}; {why}"]
    return [f"out of the model's domain: {why}"]


def _f32(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32 (Math.fround)."""
    return [float(str(np.float32(v))) for v in values]


def cell_arrays(frame: pl.DataFrame, names: list[str], cfg: AggregateConfig) -> dict[str, list[Any]]:
    """Per-cell columns of the page: position, classes, review state and what aggregate uses of each.

    ``pb`` / ``pc`` are a cell's summed model probabilities of the blast classes / of the counted
    classes; ``conf`` its maximum probability (exact float32); ``probs`` its probabilities (3 decimals).
    """
    frame = with_review_columns(frame)
    if frame.height == 0:
        keys = ("id", "x", "y", "pred", "rev", "removed", "origin", "comment", "aid", "counted", "conf", "pb",
                "pc", "probs")  # fmt: skip
        return {k: [] for k in keys}
    probs = prob_matrix(frame, names)
    blast = [j for j, c in enumerate(names) if c in cfg.blast_classes]
    counted = [j for j, c in enumerate(names) if c not in cfg.excluded_classes]
    pb = probs[:, blast].astype(np.float64).sum(axis=1) if blast else np.zeros(frame.height)
    pc = probs[:, counted].astype(np.float64).sum(axis=1) if counted else np.zeros(frame.height)
    idx = {c: i for i, c in enumerate(names)}
    return {
        "id": frame["cell_id"].to_list(),
        "x": [round(float(v), 1) for v in frame["x"].to_list()],
        "y": [round(float(v), 1) for v in frame["y"].to_list()],
        "pred": [idx.get(c, -1) if c is not None else -1 for c in frame["predicted_class"].to_list()],
        "rev": frame["reviewed_class"].to_list(),
        "removed": frame["removed"].to_list(),
        "origin": frame["origin"].to_list(),
        "comment": frame["review_comment"].to_list(),
        "aid": frame["added_id"].to_list(),
        "counted": counted_rows(frame).to_list(),
        "conf": _f32(probs.max(axis=1)),
        "pb": [round(float(v), 9) for v in pb],
        "pc": [round(float(v), 9) for v in pc],
        "probs": np.round(probs.astype(np.float64), 3).tolist(),
    }


def review_payload(
    report: dict[str, Any], frame: pl.DataFrame, cfg: AggregateConfig, viewer: DeepZoomImage | None
) -> dict[str, Any]:
    """The review part of the page's JSON data block."""
    names = list(report["model"]["classes"])
    review = review_classes(names, configured_review_classes(report))
    styles = class_styles(review)
    model_keys = {c: SHORTCUT_KEYS[i] for i, c in enumerate(names[: len(SHORTCUT_KEYS)])}
    info = {
        c: {
            "name": class_label(c),
            "color": s.color,
            "shape": s.shape,
            "text": s.text_color,
            "key": model_keys.get(c, ""),
        }
        for c, s in styles.items()
    }
    boxes = frame.select((pl.col("bbox_x1") - pl.col("bbox_x0")).alias("w")) if frame.height else None
    radius = float(np.median(boxes["w"].to_numpy())) / 2 if boxes is not None and boxes.height else 20.0
    original = (report.get("review") or {}).get("original") or {}
    qc = report.get("qc") or {}
    return {
        "review_classes": review,
        "class_info": info,
        "shapes": SHAPE_PATHS,
        "rules": page_rules(cfg),
        "flag_titles": FLAG_TITLES,
        "flag_classes": flag_classes(report, cfg),
        "model_qc": {k: qc.get(k) for k in ("low_confidence_fraction", "mean_confidence")},
        "model_figures": {k: original[k] for k in ("differential", "excluded", "blast") if k in original}
        or None,
        "domain_reasons": domain_reasons(report),
        "input_reasons": input_reasons(report),
        "domain": qc.get("domain"),
        "cell_radius_px": radius,
        # the regions a morphologist would not count in (not the empty glass): shaded in the viewer
        "excluded_regions": [
            [r["x"], r["y"], r["width"], r["height"], ", ".join(r["reasons"])]
            for r in report.get("regions") or []
            if r.get("status") != "counted" and "empty" not in r.get("reasons", [])
        ],
        "viewer": None if viewer is None else {**viewer.to_dict(), "tile_source": viewer.tile_source()},
        "cells": cell_arrays(frame, names, cfg),
    }


def template_extras(report: dict[str, Any]) -> dict[str, Any]:
    """Sign-off, identifiers, banner and audit rows for the server-side page."""
    return {
        "signoff": signoff_view(report),
        "ids": report.get("identifiers"),
        "banner": banner_reasons(report),
        "domain_text": domain_text((report.get("qc") or {}).get("domain")),
        "audit": audit_rows(report),
        "stopping": stopping_text(report["stopping"]) if report.get("stopping") else None,
    }
