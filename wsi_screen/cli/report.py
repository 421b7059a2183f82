"""``wsi-screen report``: documents made from a screened report (the one-page PDF summary).

Exit codes: 0 written; 2 the report folder, Chromium or the print failed (the message names the file).
"""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import CommandError


@click.group(short_help="Documents made from a screened report (PDF summary).")
def report() -> None:
    """Make documents from the reports of screened inputs."""


@report.command("pdf", short_help="Print the one-page summary of a report to PDF.")
@click.argument(
    "report_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="OUT",
    help="PDF file to write (one REPORT_DIR only). Default: REPORT_DIR/report.pdf.",
)
@click.option(
    "--chromium",
    default=None,
    help="Chromium binary to print with (default: $WSI_SCREEN_CHROMIUM, else chromium on PATH).",
)
def pdf(report_dirs: tuple[Path, ...], output: Path | None, chromium: str | None) -> None:
    """Print the one-page summary of each REPORT_DIR (its report.html) to a PDF with headless Chromium.

    The page's print style sheet holds the summary: identifiers, sign-off, banners, the primary
    blast figure with its interval and states, the flags and the differential. Any browser's Print
    gives the same page. Needs Chromium (apt-get install chromium), found on PATH or given here.

    Example: wsi-screen report pdf out/field_a -o field_a.pdf
    """
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.reports.pdf import pdf_page_count
    from wsi_screen.reports.pdf import print_pdf

    if output is not None and len(report_dirs) > 1:
        msg = "-o/--output names one PDF: give one REPORT_DIR, or leave -o out (REPORT_DIR/report.pdf each)"
        raise CommandError(msg)
    for folder in report_dirs:
        target = output or folder / "report.pdf"
        try:
            print_pdf(folder / REPORT_HTML, target, chromium=chromium)
        except WsiScreenError as e:
            raise CommandError(str(e)) from e
        pages = pdf_page_count(target)
        click.echo(f"wrote {target} ({pages} page{'s' if pages != 1 else ''})")
