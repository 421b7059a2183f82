"""Write all per-input outputs into OUT/<stem>/; report.json is written last and marks completion.

A report.json left by an earlier run is removed before anything else is written, so a folder
whose rewrite is interrupted never pairs new files with the old report (it reads as unfinished); a
reviewed one is archived first into ``superseded/<time>/`` (:mod:`wsi_screen.reports.rescreen`).

Files: cells.parquet, cells.geojson (QuPath detections), report_assets.json (embedded images, kept
for re-rendering after review), viewer/ (deep-zoom tiles and the viewer script), report.html and
report.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from wsi_screen.blast_rates import rates_of
from wsi_screen.config import ScreenConfig
from wsi_screen.io import real_dir
from wsi_screen.report_files import CELLS_GEOJSON
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.assets import ASSETS_JSON
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.assets import build_assets
from wsi_screen.reports.assets import write_assets
from wsi_screen.reports.cells_check import RECORD_KEY
from wsi_screen.reports.cells_check import cells_record
from wsi_screen.reports.cells_table import cells_frame
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.deepzoom import write_deep_zoom
from wsi_screen.reports.excluded_cells import excluded_cells
from wsi_screen.reports.geojson import write_cells_geojson
from wsi_screen.reports.html_report import write_report_html
from wsi_screen.reports.identifiers import IdentifierSource
from wsi_screen.reports.json_report import add_regions
from wsi_screen.reports.json_report import build_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.rescreen import archive_review
from wsi_screen.reports.rescreen import screened_trail
from wsi_screen.reports.selection import final_labels
from wsi_screen.reports.selection import gallery_ids
from wsi_screen.reports.selection import review_queue
from wsi_screen.sources import input_sha256
from wsi_screen.sources import is_slide_source
from wsi_screen.stages import aggregate
from wsi_screen.stopping_count import count_until_decided
from wsi_screen.stopping_count import region_groups
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls


def cells_to_show(
    frame: pl.DataFrame, report: dict[str, Any], cfg: ScreenConfig, options: ReportOptions
) -> list[int]:
    """Cell ids that get an embedded crop: the review queue plus the capped per-class galleries."""
    ids = [q.cell_id for q in review_queue(frame, report, cfg.aggregate, limit=options.review_queue_max)]
    for gallery in gallery_ids(frame, final_labels(frame), per_class=options.gallery_max_per_class).values():
        ids.extend(gallery)
    return sorted(set(ids))


def write_input_reports(
    item: Any,
    out_dir: Path,
    *,
    cfg: ScreenConfig,
    model_info: dict[str, Any],
    detector_info: dict[str, Any],
    calls: CellCalls,
    options: ReportOptions | None = None,
    run_key: str | None = None,
    identifiers: IdentifierSource | None = None,
) -> dict[str, Any]:
    """Stages aggregate and report of one screened input: its outputs, report.json once, last.

    Args:
        item: a :class:`wsi_screen.pipeline.ScreenedInput` that succeeded (source still open).
        out_dir: OUT/<stem>/.
        cfg: the run configuration (echoed into the report).
        model_info: name, sha256, classes, architecture, mpp, patch_size_px.
        detector_info: name and params.
        calls: all calls of the input.
        options: how much imagery report.html embeds (defaults keep 2,000-cell slides quick).
        run_key: a batch's run key for this input, recorded in report.json as ``batch.run_key``
            (what makes the batch count the input as done); None outside a batch.
        identifiers: where sample and patient identifiers come from (options, manifest); the
            input's sidecar is always read. None of them: the report says none was given.

    Returns:
        The report dict (as written to report.json).
    """
    options = options or cfg.report
    real_dir(out_dir)  # never OUT/<stem> -> elsewhere
    supersedes = archive_review(out_dir)  # a reviewed report is kept, never erased (run/batch --rescreen)
    (out_dir / REPORT_JSON).unlink(missing_ok=True)  # the completion marker goes first, comes back last
    labels = calls.labels
    regions = getattr(item, "regions", None)
    counted = item.counted_mask(calls.cells)
    stop = None
    if cfg.stopping.enabled and regions is not None and item.is_slide:  # never for a field alone
        stop = count_until_decided(region_groups(regions, calls.cells), labels, cfg.aggregate, cfg.stopping)
        counted = [c and u for c, u in zip(counted, stop.used, strict=True)]
    summary = aggregate(item, calls.select(counted), cfg.aggregate, rates_of(model_info))
    src = item.source
    w, h = src.dimensions
    sha = input_sha256(Path(item.path))
    ids = (identifiers or IdentifierSource()).for_input(Path(item.path), sha)
    input_info = {
        "path": str(item.path),
        "sha256": sha,
        "width": w,
        "height": h,
        "mpp": item.mpp.mpp,
        "mpp_source": item.mpp.source,
        "mpp_from": item.mpp.origin,  # which metadata of the file the pixel size came from
        **({"mpp_estimate": item.mpp_estimate} if item.mpp_estimate is not None else {}),
        "kind": "slide" if is_slide_source(src) else "field",
        "levels": len(src.level_downsamples),
        "reader": getattr(src, "reader", "") or None,  # the reader and its version ("wsidicom 0.36.1")
    }
    t = time.perf_counter()
    frame = cells_frame(
        calls,
        labels,
        counted=counted if regions is not None else None,
        regions=[regions.region_at(c.x, c.y) for c in calls.cells] if regions is not None else None,
    )
    write_cells_parquet(frame, out_dir / CELLS_PARQUET)
    table = cells_record(out_dir / CELLS_PARQUET, frame.height)  # what a review checks the table by
    write_cells_geojson(frame, list(calls.class_names), out_dir / CELLS_GEOJSON)
    report = build_report(
        input_info=input_info,
        model_info=model_info,
        detector_info=detector_info,
        summary=summary,
        timings_s={},
        config=cfg.to_dict(),
        warnings=list(item.warnings),
    )
    report["identifiers"] = None if ids is None else ids.to_dict()
    report[RECORD_KEY] = table
    if supersedes is not None:  # the new trail starts by naming the review it replaced
        report["audit"] = screened_trail(report, supersedes)
    if regions is not None:
        add_regions(report, regions, frame, decides_counting=item.is_slide)
        excluded = excluded_cells(report, frame)  # "0 cells detected" never hides 224 clumped ones
        if excluded is not None:
            report["qc"]["regions"]["excluded_cells"] = excluded
            if excluded["warning"]:
                report["warnings"].append(excluded["warning"])
    if stop is not None and regions is not None:
        report["stopping"] = stop.info
        unused = {r.index for r in regions.counted()[stop.info["regions_used"] :]}
        for r in report["regions"]:
            if r["id"] in unused:
                r["status"] = "not_needed"  # countable, but the count was decided before it
    if getattr(item, "unreadable", None):  # corrupt tiles skipped, patches dropped
        u = item.unreadable
        report["qc"]["unreadable_tiles"] = {
            "tiles": int(u.get("tiles", 0)),
            "tiles_total": int(u.get("tiles_total", 0)),
            "fraction": round(u.get("tiles", 0) / u["tiles_total"], 6) if u.get("tiles_total") else 0.0,
            "patches": int(u.get("patches", 0)),
        }
    by_id = {c.cell_id: c for c in calls.cells}
    shown: list[Cell] = [by_id[i] for i in cells_to_show(frame, report, cfg, options)]
    assets = build_assets(
        src,
        shown,
        source_mpp=item.mpp.mpp,
        model_mpp=float(model_info.get("mpp") or item.mpp.mpp),
        patch_size_px=int(model_info.get("patch_size_px") or 250),
        options=options,
    )
    write_assets(assets, out_dir / ASSETS_JSON)
    empty = item.regions.all_empty if item.regions is not None and item.is_slide else None
    viewer = write_deep_zoom(
        src, out_dir, quality=options.jpeg_quality, max_side=options.viewer_max_side, empty=empty
    ) if options.viewer else None  # fmt: skip
    item.timer.add("report", time.perf_counter() - t)
    item.timer.add("total", time.perf_counter() - item.started)
    report["timings_s"] = {k: round(v, 4) for k, v in item.timer.seconds.items()}
    write_report_html(
        report, out_dir / REPORT_HTML, frame=frame, assets=assets, options=options, viewer=viewer
    )
    if run_key is not None:
        report["batch"] = {"run_key": run_key}
    write_report_json(report, out_dir / REPORT_JSON)
    return report
