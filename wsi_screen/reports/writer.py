"""Write all per-input outputs into OUT/<stem>/; report.json is written last and marks completion."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from wsi_screen.aggregate import summarize
from wsi_screen.config import ScreenConfig
from wsi_screen.io import sha256_file
from wsi_screen.reports.cells_table import cells_frame
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.html_report import write_report_html
from wsi_screen.reports.json_report import build_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.types import CellCalls

REPORT_JSON = "report.json"


def write_input_reports(
    item: Any,
    out_dir: Path,
    *,
    cfg: ScreenConfig,
    model_info: dict[str, Any],
    detector_info: dict[str, Any],
    calls: CellCalls,
) -> dict[str, Any]:
    """Aggregate one screened input and write cells.parquet, report.html and report.json.

    Args:
        item: a :class:`wsi_screen.pipeline.ScreenedInput` that succeeded.
        out_dir: OUT/<stem>/.
        cfg: the run configuration (echoed into the report).
        model_info: name, sha256, classes, architecture, mpp, patch_size_px.
        detector_info: name and params.
        calls: all calls of the input.

    Returns:
        The report dict.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    labels = calls.labels
    summary = summarize(labels, calls.probs, calls.class_names, cfg.aggregate)
    item.timer.add("aggregate", time.perf_counter() - t)
    src = item.source
    w, h = src.dimensions
    input_info = {
        "path": str(item.path),
        "sha256": sha256_file(item.path),
        "width": w,
        "height": h,
        "mpp": item.mpp.mpp,
        "mpp_source": item.mpp.source,
        "kind": "slide" if len(src.level_downsamples) > 1 or type(src).__name__ == "SlideSource" else "field",
        "levels": len(src.level_downsamples),
    }
    t = time.perf_counter()
    write_cells_parquet(cells_frame(calls, labels), out_dir / "cells.parquet")
    item.timer.add("report", time.perf_counter() - t)
    item.timer.add("total", time.perf_counter() - item.started)
    report = build_report(
        input_info=input_info,
        model_info=model_info,
        detector_info=detector_info,
        summary=summary,
        timings_s=dict(item.timer.seconds),
        config=cfg.to_dict(),
        warnings=list(item.warnings),
    )
    write_report_html(report, out_dir / "report.html")
    write_report_json(report, out_dir / REPORT_JSON)
    return report
