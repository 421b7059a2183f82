"""Screen a case (the fields of one specimen) into one pooled report.

OUT/<case>/ gets ``report.json`` (``input.kind = "case"``, a ``fields`` list, the differential,
blast %, flags and QC over the cells of all fields, judged by the same aggregation rules as one
field), ``cells.parquet`` (every field's cells with a ``field`` column and the cell's id in its
field report) and ``report.html`` (the pooled result first, then one row per field with a
thumbnail and a link). Each field keeps its own full report under OUT/<case>/fields/<field>/.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from wsi_screen.aggregate import summarize
from wsi_screen.blast_rates import rates_of
from wsi_screen.cases import CaseSpec
from wsi_screen.cases import pool_calls
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_write_text
from wsi_screen.io import real_dir
from wsi_screen.item_reports import InputOutcome
from wsi_screen.item_reports import write_item_reports
from wsi_screen.jpeg import jpeg_data_uri
from wsi_screen.outnames import clean_stem
from wsi_screen.overlap import write_behind
from wsi_screen.pipeline import Screener
from wsi_screen.report_files import CELLS_PARQUET
from wsi_screen.report_files import REPORT_HTML
from wsi_screen.report_files import REPORT_JSON
from wsi_screen.reports.cells_check import RECORD_KEY
from wsi_screen.reports.cells_check import cells_record
from wsi_screen.reports.cells_table import cells_frame
from wsi_screen.reports.cells_table import write_cells_parquet
from wsi_screen.reports.html_report import static_text
from wsi_screen.reports.html_report import template_env
from wsi_screen.reports.identifiers import IdentifierSource
from wsi_screen.reports.json_report import build_report
from wsi_screen.reports.json_report import write_report_json
from wsi_screen.reports.rescreen import archive_review
from wsi_screen.reports.rescreen import screened_trail
from wsi_screen.stopping_count import case_groups
from wsi_screen.stopping_count import count_until_decided
from wsi_screen.types import CellCalls
from wsi_screen.types import Failure

log = logging.getLogger(__name__)

FIELDS_DIR = "fields"
THUMB_PX = 240


@dataclass
class CaseOutcome:
    """One screened case: its folder, pooled report (None when no field could be screened), failures."""

    name: str
    out_dir: Path
    report: dict[str, Any] | None
    failures: list[Failure]


def screen_case(
    screener: Screener,
    info: dict[str, Any],
    case: CaseSpec,
    out: Path,
    *,
    out_name: str | None = None,
    run_key: str | None = None,
) -> CaseOutcome:
    """Screen every field of ``case`` and write the field reports and the pooled case report.

    A field that fails is listed with its stage and message and left out of the pooled figures;
    the case fails only when no field could be screened. ``run_key`` (a batch's) goes into the
    case's report.json as ``batch.run_key``.
    """
    started = time.perf_counter()
    case_dir = real_dir(out / clean_stem(out_name or case.name))  # names are made safe here too
    try:  # the case's identifiers (--sample-id/--patient-id, its manifest row, a <folder>.ids.json sidecar)
        ids = (screener.identifiers or IdentifierSource()).for_input(
            Path(case.folder or case.name), case.digest()
        )
    except WsiScreenError as e:  # a bad sidecar or manifest row: the case fails before anything is screened
        return CaseOutcome(case.name, case_dir, None, [Failure(case.name, "read", type(e).__name__, str(e))])
    supersedes = archive_review(case_dir)  # a reviewed case report is kept, never erased (--rescreen)
    names = case.field_names()
    parts: list[CellCalls] = []
    fields: list[dict[str, Any]] = []
    failures: list[Failure] = []
    clf = screener.classifier

    def write(pair: tuple[Any, str]) -> tuple[CellCalls | None, dict[str, Any] | None, Any]:
        """Write one field's own reports and take its thumbnail (on the writer thread), then close it."""
        item, name = pair
        try:
            if not item.ok:
                return None, None, None
            calls, rep = write_item_reports(screener, info, item, case_dir / FIELDS_DIR / name)
            return calls, rep, item.source.thumbnail(THUMB_PX) if rep is not None and item.source else None
        finally:
            item.close()

    screened = screener.screen(list(case.fields), stems=names, close_done=False)
    pairs = ((item, name) for item, name in zip(screened, names, strict=True))
    for (item, name), written in write_behind(
        write, pairs, depth=screener.cfg.pipeline.write_behind, nice=screener.cfg.pipeline.worker_nice
    ):
        entry: dict[str, Any] = {"name": name, "path": str(item.path)}
        failure = item.failure or _take_field(screener, item, *written, entry, parts)
        if failure is not None:
            entry["failure"] = {
                "stage": failure.stage,
                "error_type": failure.error_type,
                "message": failure.message,
            }
            failures.append(failure)
        else:
            entry["report"] = f"{FIELDS_DIR}/{name}/{REPORT_HTML}"
        fields.append(entry)
    if not parts:
        if any(f.get("status") == "excluded" for f in fields):
            why = "; ".join(
                f"{f['name']}: {f['excluded_because']}" for f in fields if "excluded_because" in f
            )
            failures.append(
                Failure(case.name, "regions", "CaseError", f"{case.name}: every field was excluded ({why})")
            )
        return CaseOutcome(case.name, case_dir, None, failures)
    pooled, field_of = pool_calls(parts, clf.class_names, clf.name)
    ok = [f for f in fields if f.get("status") == "counted"]
    cfg = screener.cfg
    stop = None
    used = [True] * len(pooled.cells)
    if cfg.stopping.enabled:  # count the fields' regions best first; stop once every cut-off is decided
        groups = case_groups([(f["name"], p.cells, f["_regions"]) for f, p in zip(ok, parts, strict=True)])
        stop = count_until_decided(groups, pooled.labels, cfg.aggregate, cfg.stopping)
        used = stop.used
    counted = pooled.select(used)
    summary = summarize(
        counted.labels,
        counted.probs,
        pooled.class_names,
        cfg.aggregate,
        counted.judge_domain(),
        blast_rates=rates_of(info["model"]),
    )
    report = build_report(
        input_info={
            "path": str(case.folder or case.name),
            "sha256": case.digest(),
            "width": max(f["width"] for f in ok),
            "height": max(f["height"] for f in ok),
            "mpp": ok[0]["mpp"],
            "mpp_source": ok[0]["mpp_source"],
            "kind": "case",
            "levels": 1,
        },
        model_info=info["model"],
        detector_info=info["detector"],
        summary=summary,
        timings_s={**_stage_seconds(fields), "total": time.perf_counter() - started},
        config=screener.cfg.to_dict(),
        warnings=[
            f"{f['name']}: failed ({f['failure']['stage']}): {f['failure']['message']}"
            for f in fields
            if "failure" in f
        ]
        + [
            f"{f['name']}: left out of the pooled figures: {f['excluded_because']}"
            for f in fields
            if "excluded_because" in f
        ],
    )
    report["case"] = {
        "name": case.name,
        "n_fields": len(fields),
        "n_fields_screened": sum(1 for f in fields if "failure" not in f),
        "n_fields_counted": len(ok),
        "n_fields_excluded": sum(1 for f in fields if f.get("status") == "excluded"),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in case.skipped],
    }
    if stop is not None:
        report["stopping"] = {
            **stop.info,
            "stopped_in_region": list(stop.info["stopped_in_region"] or []) or None,
        }
        for f, n_used in zip(ok, _per_field(used, field_of, len(ok)), strict=True):
            f["cells_used"] = n_used
    report["fields"] = [{k: v for k, v in f.items() if k not in ("thumbnail", "_regions")} for f in fields]
    report["identifiers"] = None if ids is None else ids.to_dict()
    frame = cells_frame(pooled, pooled.labels, counted=used)
    ids = [c for p in parts for c in range(len(p.cells))]
    frame = frame.with_columns(
        pl.Series("field", [ok[i]["name"] for i in field_of], dtype=pl.Utf8),
        pl.Series("field_cell_id", ids, dtype=pl.Int64),
    )
    write_cells_parquet(frame, case_dir / CELLS_PARQUET)
    report[RECORD_KEY] = cells_record(case_dir / CELLS_PARQUET, frame.height)
    if supersedes is not None:  # the new trail starts by naming the review it replaced
        report["audit"] = screened_trail(report, supersedes)
    write_case_html(report, fields, case_dir / REPORT_HTML)
    if run_key is not None:
        report["batch"] = {"run_key": run_key}
    write_report_json(report, case_dir / REPORT_JSON)  # last: the completion marker
    return CaseOutcome(case.name, case_dir, report, failures)


def _take_field(
    screener: Screener,
    item: Any,
    calls: CellCalls | None,
    rep: dict[str, Any] | None,
    thumb: Any,
    entry: dict[str, Any],
    parts: list[CellCalls],
) -> Failure | None:
    """Fill a written field's ``fields`` entry and keep its calls for pooling (or return its failure)."""
    if rep is None or calls is None:
        return item.failure  # type: ignore[no-any-return]
    entry.update(_field_entry(rep, thumb))
    why = field_exclusion(rep, screener.cfg.regions.min_field_counted_fraction)
    entry["status"] = "excluded" if why else "counted"
    if why:  # its cells stay in its own report, not in the pooled figures
        entry["excluded_because"] = why
        log.info("%s: field left out of the case: %s", item.path.name, why)
    else:
        parts.append(calls)
        entry["_regions"] = rep.get("regions") or []  # for the stopping rule; not written
    return None


def _stage_seconds(fields: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per stage summed over the screened fields (the summary's stage columns of a case)."""
    out: dict[str, float] = {}
    for f in fields:
        for stage, sec in (f.get("timings_s") or {}).items():
            if stage != "total" and isinstance(sec, int | float):
                out[stage] = out.get(stage, 0.0) + float(sec)
    return out


def _per_field(used: list[bool], field_of: list[int], n_fields: int) -> list[int]:
    """Cells the stopping rule used in each field."""
    out = [0] * n_fields
    for u, f in zip(used, field_of, strict=True):
        out[f] += int(u)
    return out


def field_exclusion(rep: dict[str, Any], min_counted_fraction: float) -> str | None:
    """Why a field's focus or density makes it unusable for its case (its regions), or None."""
    regions = (rep.get("qc") or {}).get("regions")
    if not regions:
        return None
    share = float(regions.get("counted_fraction_of_non_empty", 1.0))
    if share >= min_counted_fraction:
        return None
    reasons = {k: n for k, n in (regions.get("reasons") or {}).items() if n and k != "empty"}
    why = ", ".join(f"{k} {n}" for k, n in reasons.items()) or "too little countable area"
    return (
        f"only {100 * share:.0f} % of its non-empty area is countable (regions.min_field_counted_fraction "
        f"{min_counted_fraction:g}); excluded regions: {why}"
    )


def _field_entry(rep: dict[str, Any], thumb: Any) -> dict[str, Any]:
    inp, qc = rep["input"], rep["qc"]
    entry: dict[str, Any] = {
        "sha256": inp["sha256"],
        "width": inp["width"],
        "height": inp["height"],
        "mpp": inp["mpp"],
        "mpp_source": inp["mpp_source"],
        "cells_detected": rep["cells_detected"],
        "cells_counted": rep["cells_counted"],
        "blast_percent": rep["blast"].get("percent"),
        "low_confidence_fraction": qc.get("low_confidence_fraction"),
        "artefact_fraction": qc.get("artefact_fraction"),
        "domain": (qc.get("domain") or {}).get("status"),
        "domain_score": (qc.get("domain") or {}).get("score"),
        "timings_s": rep["timings_s"],
    }
    if thumb is not None:
        try:
            entry["thumbnail"] = jpeg_data_uri(thumb, 80, what="a field thumbnail")
        except WsiScreenError:  # the case page shows the field without it
            entry["thumbnail"] = None
    return entry


def write_case_html(report: dict[str, Any], fields: list[dict[str, Any]], path: Path) -> None:
    """Render the case page atomically.

    Identifiers, version and sign-off, the banner, the pooled result, a row per field, the audit trail.
    """
    from wsi_screen.reports.page_data import template_extras

    html = (
        template_env()
        .get_template("case.html.j2")
        .render(
            r=report,
            **template_extras(report),
            fields=[{"failure": None, "thumbnail": None, "report": None, **f} for f in fields],
            domain=(report.get("qc") or {}).get("domain") or {},
            css=static_text("report.css"),
        )
    )
    atomic_write_text(path, html)


def plan_run_inputs(
    inputs: list[Path], case_name: str | None
) -> tuple[list[Path], list[str], list[tuple[CaseSpec, str]]]:
    """Split ``run``'s inputs into single files and cases, with one output name each.

    A folder is a case of the fields in it; with ``case_name`` every file given is one case.
    Output names never clash: file stems and case names are made unique together.

    Returns:
        The files, their output names, and the cases with theirs.

    Raises:
        InputError: ``--case`` with folders, or a folder without fields (naming it).
    """
    from wsi_screen.cases import case_from_files
    from wsi_screen.cases import case_from_folder
    from wsi_screen.errors import InputError
    from wsi_screen.pipeline import unique_stems
    from wsi_screen.sources import is_case_folder

    dirs = [p for p in inputs if is_case_folder(p)]  # a folder of DICOM instances is one slide
    files = [p for p in inputs if not is_case_folder(p)]
    if case_name is not None:
        if dirs:
            msg = f"--case {case_name}: give field files, not folders ({dirs[0]} is a folder)"
            raise InputError(msg)
        cases, files = [case_from_files(files, case_name)], []
    else:
        cases = [case_from_folder(d) for d in dirs]
    names = unique_stems([*files, *[Path(clean_stem(c.name) + ".png") for c in cases]])
    return files, names[: len(files)], list(zip(cases, names[len(files) :], strict=True))


def screen_case_folder(
    screener: Screener, info: dict[str, Any], folder: Path, out: Path, stem: str, run_key: str | None
) -> InputOutcome:
    """Screen a folder of fields as one case into ``out/<stem>/`` (its outcome: the pooled report).

    The case fails (its first failure) only when no field could be screened; failed fields of a
    reported case are listed in its report.
    """
    from wsi_screen.cases import case_from_folder

    t = time.perf_counter()
    try:
        case = case_from_folder(folder)
        done = screen_case(screener, info, case, out, out_name=stem, run_key=run_key)
    except WsiScreenError as e:
        failed = Failure(str(folder), "read", type(e).__name__, str(e))
        return InputOutcome(folder, out / stem, failed, None, time.perf_counter() - t)
    failure: Failure | None = None
    if done.report is None:
        failure = (
            done.failures[0]
            if done.failures
            else Failure(str(folder), "read", "CaseError", f"{folder}: no field screened")
        )
    return InputOutcome(folder, done.out_dir, failure, done.report, time.perf_counter() - t)
