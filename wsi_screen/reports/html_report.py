"""The review report (report.html): one self-contained file rendered with jinja2, autoescape on.

Everything is inline (CSS, JS, images as data: URIs) so the file opens from disk with no network.
Values from file names and metadata go through jinja's autoescaping; the per-cell data for the
page script is embedded as JSON with ``<``, ``>`` and ``&`` escaped so it cannot end its script tag.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import polars as pl
from markupsafe import Markup

from wsi_screen.classes import class_label
from wsi_screen.config import AggregateConfig
from wsi_screen.config import ScreenConfig
from wsi_screen.io import atomic_write_text
from wsi_screen.reports.assets import ReportAssets
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.deepzoom import DeepZoomImage
from wsi_screen.reports.page_data import flag_classes
from wsi_screen.reports.page_data import review_payload
from wsi_screen.reports.page_data import template_extras
from wsi_screen.reports.selection import final_labels
from wsi_screen.reports.selection import gallery_ids
from wsi_screen.reports.selection import hex_color
from wsi_screen.reports.selection import review_queue

PAGE_SCRIPTS = ("aggregate.js", "review_state.js", "picker.js", "live.js", "viewer.js", "page.js")
"""The page's scripts, in load order: the rules, the review state, the class UI, the live figures,
the viewer and the page's wiring (page.js)."""


def _num(value: float | None) -> str:
    """A number for a table cell: whole numbers without decimals, others with one."""
    if value is None:
        return "–"
    v = float(value)
    return f"{v:.0f}" if v.is_integer() else f"{v:.1f}"


@functools.cache
def template_env() -> jinja2.Environment:
    """The jinja2 environment of the report templates (autoescape on, strict undefined)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wsi_screen", "reports/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["basename"] = lambda p: Path(str(p)).name.replace("\\", "/").rsplit("/", 1)[-1]
    env.filters["pct"] = lambda v, nd=1: "–" if v is None else f"{float(v):.{nd}f}"
    env.filters["ci"] = lambda c: "–" if not c else f"{float(c[0]):.1f}–{float(c[1]):.1f}"
    env.filters["num"] = _num
    env.filters["label"] = class_label
    env.filters["color"] = hex_color
    return env


@functools.cache
def static_text(name: str) -> Markup:
    """Inline CSS/JS shipped beside the templates (trusted package files, not user data)."""
    text = (resources.files("wsi_screen") / "reports" / "templates" / name).read_text(encoding="utf-8")
    return Markup(text)  # noqa: S704 - package file, never user input


def script_json(data: Any) -> Markup:
    """JSON safe to place inside ``<script type="application/json">``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # noqa: S704 - escaped above


def aggregate_config(report: dict[str, Any]) -> AggregateConfig:
    """The aggregation rules echoed in a report."""
    return ScreenConfig.from_dict(report["config"], where="report.json config").aggregate


def report_context(
    report: dict[str, Any],
    frame: pl.DataFrame,
    assets: ReportAssets,
    options: ReportOptions,
    viewer: DeepZoomImage | None = None,
) -> dict[str, Any]:
    """Everything the template needs besides the report dict itself."""
    names = list(report["model"]["classes"])
    cfg = aggregate_config(report)
    labels = final_labels(frame)
    ids = frame["cell_id"].to_list() if frame.height else []
    conf = frame["confidence"].to_numpy() if frame.height else np.zeros(0)
    row_of = {cid: i for i, cid in enumerate(ids)}
    reviewed = frame["reviewed_class"].to_list() if "reviewed_class" in frame.columns else [None] * len(ids)

    def tile(cid: int) -> dict[str, Any]:
        i = row_of[cid]
        return {"id": cid, "cls": labels[i], "conf": float(conf[i]), "uri": assets.crops.get(cid),
                "reviewed": reviewed[i] is not None}  # fmt: skip

    queue = [
        {**tile(q.cell_id), "reason": q.reason}
        for q in review_queue(frame, report, cfg, limit=options.review_queue_max)
        if q.cell_id in assets.crops and reviewed[row_of[q.cell_id]] is None  # corrected cells are settled
    ]
    totals: dict[str, int] = {}
    for lab in labels:
        totals[lab] = totals.get(lab, 0) + 1
    galleries = []
    per_class = gallery_ids(frame, labels, per_class=max(options.gallery_max_per_class, 1) * 4)
    for code in dict.fromkeys([*names, *totals]):  # reviewer-only classes after the model's
        shown = [tile(c) for c in per_class.get(code, []) if c in assets.crops][
            : options.gallery_max_per_class
        ]
        galleries.append({"code": code, "total": totals.get(code, 0), "cells": shown})
    page = review_payload(report, frame, cfg, viewer)
    payload = {
        **page,
        "classes": names,
        "input": str(report["input"]["path"]),
        "input_sha256": report["input"].get("sha256"),
        # unsaved page work is kept per screening and review: cell ids differ between runs, and
        # a page re-rendered by `review apply` starts from its recorded review, not an old draft
        "storage_key": (
            f"{report['input'].get('sha256')}:{report['model'].get('sha256')}:{report.get('generated_at')}"
            f":{(report.get('review') or {}).get('reviewed_at', '')}"
        ),
    }
    lacks = {k: [c for c in v if c not in names] for k, v in flag_classes(report, cfg).items()}
    return {
        "queue": queue,
        "galleries": galleries,
        "totals": totals,
        "assets": assets,
        "options": options,
        "viewer": viewer,
        "lacks": lacks,
        "n_review_classes": len(page["review_classes"]),
        "model_figures": page["model_figures"],
        "payload": script_json(payload),
        "css": static_text("report.css")
        + static_text("review.css"),  # review.css: its parts and the one-page print
        "js": Markup("\n").join(static_text(n) for n in PAGE_SCRIPTS),
        "cells_with_crops": len(assets.crops),
        **template_extras(report),
    }


def render_report_html(
    report: dict[str, Any],
    frame: pl.DataFrame | None = None,
    assets: ReportAssets | None = None,
    options: ReportOptions | None = None,
    viewer: DeepZoomImage | None = None,
) -> str:
    """Render report.html from the report dict, the per-cell table and the embedded images.

    Args:
        report: report.json content.
        frame: cells.parquet content (an empty table shows figures without cells).
        assets: overview and crops (none: the report has no images).
        options: gallery and queue sizes.
        viewer: the deep-zoom tiles written beside the page (none: the page has no viewer).

    Returns:
        The HTML text.

    Example:
        >>> html = render_report_html(report, frame, assets)  # doctest: +SKIP
    """
    options = options or ReportOptions()
    if frame is None:
        frame = pl.DataFrame({"cell_id": [], "x": [], "y": [], "predicted_class": [], "confidence": []})
    ctx = report_context(report, frame, assets or ReportAssets(), options, viewer)
    return template_env().get_template("report.html.j2").render(r=report, **ctx)


def write_report_html(report: dict[str, Any], path: Path, **kwargs: Any) -> None:
    """Render and write report.html atomically (keyword arguments as :func:`render_report_html`)."""
    atomic_write_text(path, render_report_html(report, **kwargs))
