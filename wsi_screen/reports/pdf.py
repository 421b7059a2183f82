"""A PDF of the report's one-page summary, printed by headless Chromium from report.html.

report.html carries a print style sheet that prints only its summary (identifiers, figures with
their intervals and states, flags, banners, sign-off), on one A4 page. Any browser's "Print" gives
that page; this module runs the same print unattended::

    chromium --headless --no-pdf-header-footer --print-to-pdf=report.pdf file:///.../report.html

Chromium is not a Python dependency: it is found as ``$WSI_SCREEN_CHROMIUM`` or on PATH
(``chromium``, ``chromium-browser``, ``google-chrome``); ``apt-get install chromium`` provides it.
The PDF is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from wsi_screen.errors import MissingDependencyError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path

CHROMIUM_ENV = "WSI_SCREEN_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfError(WsiScreenError):
    """Printing a report to PDF failed; the message names the file and what Chromium said."""

    stage = "report"


def find_chromium() -> str | None:
    """The Chromium binary to print with: ``$WSI_SCREEN_CHROMIUM``, else the first one on PATH."""
    env = os.environ.get(CHROMIUM_ENV)
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def chromium_print_args(binary: str, html: Path, pdf: Path, profile: Path) -> list[str]:
    """The command line that prints ``html`` to ``pdf`` (documented in docs/review.md)."""
    args = [
        binary, "--headless", "--disable-gpu", "--no-pdf-header-footer", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
        f"--print-to-pdf={pdf}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(2, "--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return [*args, html.resolve().as_uri()]


def print_pdf(html: Path, pdf: Path, *, chromium: str | None = None, timeout_s: float = 120.0) -> Path:
    """Print ``html`` (a report.html) to ``pdf`` with headless Chromium.

    Raises:
        MissingDependencyError: no Chromium found.
        PdfError: the page is missing, or Chromium failed or wrote no PDF (the message says why).
    """
    html, pdf = Path(html), Path(pdf)
    if not html.is_file():
        msg = f"{html}: report page not found"
        raise PdfError(msg)
    binary = chromium or find_chromium()
    if not binary:
        msg = (
            f"no Chromium found to print {html}: install it (apt-get install chromium) "
            f"or set {CHROMIUM_ENV} to its path"
        )
        raise MissingDependencyError(msg)
    with tempfile.TemporaryDirectory(prefix="wsi-screen-pdf-") as profile, atomic_path(pdf) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            proc = subprocess.run(
                chromium_print_args(binary, html, tmp, Path(profile)),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            msg = f"{html}: Chromium could not print the page: {e}"
            raise PdfError(msg) from e
        if not tmp.is_file() or tmp.stat().st_size == 0 or not tmp.read_bytes().startswith(b"%PDF"):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            msg = f"{html}: Chromium wrote no PDF ({tail[0][:200]})"
            raise PdfError(msg)
    return pdf


def pdf_page_count(pdf: Path) -> int:
    """Pages of a PDF Chromium wrote (its page objects are plain ``/Type /Page`` dictionaries)."""
    data = Path(pdf).read_bytes()
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages")
