"""``wsi-screen review``: apply a reviewer's corrections exported from report.html.

Exit codes: 0 applied; 2 invalid corrections file or report folder (the message names the file).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click


class ReviewInputError(click.ClickException):
    """A bad corrections file or report folder (exit code 2, without the usage text)."""

    exit_code = 2


@click.group(short_help="Apply a reviewer's corrections to a screened report.")
def review() -> None:
    """Review screened reports: apply corrections made in report.html, verify a report's audit trail."""


@review.command("apply", short_help="Apply corrections exported from report.html.")
@click.argument("report_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("corrections", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reviewer", default=None, help="Reviewer name (overrides the one in the corrections file).")
@click.option(
    "--sign",
    is_flag=True,
    help="Sign the new version: its files are frozen read-only under REPORT_DIR/versions/v<N>/ and "
    "recorded in the audit trail (needs a reviewer).",
)
def apply(report_dir: Path, corrections: Path, reviewer: str | None, sign: bool) -> None:
    """Apply CORRECTIONS (JSON exported from report.html) to the report in REPORT_DIR.

    Recomputes the differential, blast %, M:E ratio and flags with the reviewer's classes,
    re-renders report.html and report.json, and keeps the model's predictions beside the
    corrections (cells.parquet column 'reviewed_class'; report.json 'review' block). In a
    batch's output folder, the input's row of summary.csv and summary.parquet gets the reviewed
    figures. The index (REPORT_DIR/../index.html) is refreshed when present; a batch's index keeps
    the inputs and failures of the batch summary.

    The file states the end state of each cell it names: applied again, it changes nothing and no
    new version is made (with --sign, the version as it stands is signed).
    """
    _review_and_report(report_dir, corrections, reviewer=reviewer, sign=sign, comment=None)


@review.command("sign", short_help="Sign a report as it stands, without a corrections file.")
@click.argument("report_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--reviewer", required=True, help="Who signs (recorded in the audit trail and on the page).")
@click.option("--comment", default=None, help="The reviewer's comment on the case.")
def sign_cmd(report_dir: Path, reviewer: str, comment: str | None) -> None:
    """Sign the report in REPORT_DIR as it stands (reviewed or not): its figures become a signed version.

    report.json, report.html and cells.parquet are frozen read-only under REPORT_DIR/versions/v<N>/
    and a 'signed' event records their sha256. A report whose current version is signed already is
    left as it is. REPORT_DIR may be a case (OUT/<case>): the case is signed as a case, its pooled
    figures over its fields as reviewed.
    """
    from wsi_screen.reports.case_signoff import is_case

    if is_case(report_dir):
        _sign_case(report_dir, reviewer=reviewer, comment=comment)
        return
    _review_and_report(report_dir, None, reviewer=reviewer, sign=True, comment=comment)


def _sign_case(case_dir: Path, *, reviewer: str, comment: str | None) -> None:
    """``review sign`` of a case folder, then its summary row and OUT's index."""
    from wsi_screen.batch.outdir import LOCK_NAME
    from wsi_screen.batch.outdir import batch_lock
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.reports.case_signoff import sign_case

    with contextlib.ExitStack() as stack:
        try:
            out = case_dir.resolve().parent
            if (out / LOCK_NAME).exists():
                stack.enter_context(batch_lock(out))
            _refuse_links_before_writing(out, None)
            report, signed = sign_case(case_dir, reviewer=reviewer, comment=comment)
        except WsiScreenError as e:
            raise ReviewInputError(str(e)) from e
        if not signed:
            _report_unchanged(case_dir, report, None)
            return
        block = report["signoff"]
        click.echo(f"case {case_dir.name}: version {block['version']} signed by {block['reviewer']}: "
                   f"{case_dir / 'versions'}/v{block['version']}/")  # fmt: skip
        _update_summary(case_dir.resolve(), report)
        _refresh_index(out)


def _review_and_report(
    report_dir: Path, corrections: Path | None, *, reviewer: str | None, sign: bool, comment: str | None
) -> None:
    """Apply (or only sign) under the batch lock, then print and refresh the case, summary and index."""
    from wsi_screen.batch.outdir import LOCK_NAME
    from wsi_screen.batch.outdir import batch_lock
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.reports.case_review import case_of_field
    from wsi_screen.reports.case_review import refresh_case
    from wsi_screen.reports.case_signoff import is_case
    from wsi_screen.reports.review import review_report

    if is_case(report_dir):
        msg = (
            f"{report_dir}: a case is reviewed field by field (wsi-screen review apply "
            f"{report_dir}/fields/FIELD corrections.json) and signed as a whole (wsi-screen review sign "
            f"{report_dir} --reviewer NAME); nothing applied"
        )
        raise ReviewInputError(msg)
    with contextlib.ExitStack() as stack:
        try:
            out = report_dir.resolve().parent
            if (out / LOCK_NAME).exists():  # a batch's folder: never while that batch is writing it
                stack.enter_context(batch_lock(out))
            case_dir = case_of_field(report_dir)
            _refuse_links_before_writing(out, case_dir)
            outcome = review_report(report_dir, corrections, reviewer=reviewer, sign=sign, comment=comment)
            new = outcome.report
            if not outcome.changed:
                _report_unchanged(report_dir, new, corrections)
                return
            who = (new.get("review") or {}).get("reviewer")
            case = refresh_case(case_dir, field=report_dir.resolve().name, reviewer=who) if case_dir else None
        except WsiScreenError as e:
            raise ReviewInputError(str(e)) from e
        _report_applied(report_dir, new, outcome.cells_changed)
        if case_dir is not None and case is not None:  # a field of a case: the pooled figures follow
            was, now = case["review"]["blast_percent_before"], case["blast"]["percent"]
            click.echo(
                f"case {case_dir.name}: pooled figures recomputed over the reviewed fields "
                f"({', '.join(case['review']['fields_reviewed'])}); blasts "
                f"{'n/a' if was is None else f'{was:.1f} %'} -> {'n/a' if now is None else f'{now:.1f} %'}"
            )
            _update_summary(case_dir.resolve(), case)
            _refresh_index(case_dir.resolve().parent)


@review.command("verify", short_help="Check a report's audit trail, signed versions and cells table.")
@click.argument("report_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify(report_dir: Path) -> None:
    """Check that the audit trail of the report in REPORT_DIR is whole and its files are its own.

    The hash chain of report.json's trail, the audit anchor beside it (no event removed), every
    signed version under versions/ (frozen files unchanged, none without its signature), the
    sign-off, and cells.parquet against the sha256 report.json recorded. Exit 0 when all hold;
    2 with one line naming what does not.
    """
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.reports.review import verify_review

    try:
        click.echo(verify_review(report_dir))
    except WsiScreenError as e:
        raise ReviewInputError(str(e)) from e


def _refuse_links_before_writing(out: Path, case_dir: Path | None) -> None:
    """Refuse a link at any file ``review apply`` may rewrite after the report.

    OUT's summary and index, and for a case's field the case's report and its OUT's files.

    Raises:
        OutputError: one of them is a symbolic link (nothing has been written yet).
    """
    from wsi_screen.batch.outdir import check_out_files
    from wsi_screen.io import refuse_links
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON

    check_out_files(out)
    if case_dir is not None:
        refuse_links(case_dir / name for name in (REPORT_JSON, REPORT_HTML, CELLS_PARQUET))
        check_out_files(case_dir.parent)


def _report_unchanged(report_dir: Path, report: dict[str, Any], corrections: Path | None) -> None:
    """Say that nothing was written: the file states what the report holds, or it is signed already."""
    block = report.get("signoff") or {}
    state = (
        f"version {block.get('version')} {block.get('status')}"
        + (f" by {block.get('reviewer')}" if block.get("reviewer") else "")
        if block
        else "version 0 (not reviewed)"
    )
    if corrections is not None:
        click.echo(
            f"0 cells changed: {report_dir} already holds the corrections of {corrections.name}; "
            f"nothing written ({state})"
        )
    else:
        click.echo(f"{report_dir}: {state} already; nothing written")


def _report_applied(report_dir: Path, new: dict[str, Any], cells_changed: int) -> None:
    """Print what the review changed and refresh the batch summary and index of OUT."""
    from wsi_screen.report_files import CELLS_GEOJSON
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON

    rv = new["review"]
    before, after = rv["blast_percent_before"], new["blast"]["percent"]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} %"

    click.echo(
        f"{rv['n_corrections']} correction(s) in {report_dir} ({cells_changed} cell(s) changed now): "
        f"blasts {fmt(before)} -> {fmt(after)}"
    )
    for f in rv["flags_changed"]:
        click.echo(f"  flag {f['name']}: {f['from']} -> {f['to']}")
    block = new.get("signoff") or {}
    if block.get("status") == "signed":
        click.echo(
            f"version {block['version']} signed by {block['reviewer']}: {report_dir / 'versions'}/v{block['version']}/"
        )
    elif block:
        amends = f", amends signed version {block['amends']}" if block.get("amends") else ""
        click.echo(f"version {block['version']}: draft, not signed{amends}")
    rewritten = ", ".join((REPORT_JSON, REPORT_HTML, CELLS_PARQUET, CELLS_GEOJSON))
    click.echo(f"wrote {report_dir}/ ({rewritten})")
    folder = report_dir.resolve()
    _update_summary(folder, new)
    _refresh_index(folder.parent)


def _refresh_index(out: Path) -> None:
    """Rewrite OUT/index.html when wsi-screen wrote one: a batch's from its summary, else from OUT/*/."""
    from wsi_screen.batch.summary import refresh_index
    from wsi_screen.reports.index import INDEX_HTML
    from wsi_screen.reports.index import write_index_html
    from wsi_screen.reports.index import written_by_us

    if (out / INDEX_HTML).exists() and not written_by_us(out / INDEX_HTML):
        click.echo(f"warning: {out / INDEX_HTML} was not written by wsi-screen; left as it is", err=True)
    elif (out / INDEX_HTML).exists():
        try:  # a batch's index keeps its inputs and failures; any other is rebuilt from OUT/*/
            if not refresh_index(out):
                write_index_html(out)
            click.echo(f"index   {out / INDEX_HTML}")
        except OSError as e:
            click.echo(f"warning: {out / INDEX_HTML} not refreshed: {e}", err=True)


def _update_summary(folder: Path, report: dict[str, Any]) -> None:
    """Put the reviewed figures into the batch summary of OUT (folder's parent), when there is one."""
    from wsi_screen.batch.summary import SummaryError
    from wsi_screen.batch.summary import update_reviewed_input

    try:  # a summary wsi-screen did not write is refused there, with its path (SummaryError)
        for path in update_reviewed_input(folder.parent, folder.name, report):
            click.echo(f"summary {path}: row of {folder.name} updated")
    except SummaryError as e:
        click.echo(f"warning: {e}", err=True)
