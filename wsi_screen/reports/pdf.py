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

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from wsi_screen.errors import MissingDependencyError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_path

log = logging.getLogger(__name__)

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


def print_pdf(
    html: Path, pdf: Path, *, chromium: str | None = None, timeout_s: float = 120.0, attempts: int = 2
) -> Path:
    """Print ``html`` (a report.html) to ``pdf`` with headless Chromium.

    Headless Chromium now and then hangs instead of exiting (seen once in a CI run that passes
    in 6 s otherwise); a run that passes ``timeout_s`` is killed, its PDF kept if it was written
    completely, and otherwise tried again with a fresh profile, up to ``attempts`` runs.

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
    stderr = ""
    with atomic_path(pdf) as tmp:
        for attempt in range(1, attempts + 1):
            try:
                stderr = _run_chromium(binary, html, tmp, timeout_s)
                break
            except subprocess.TimeoutExpired as e:
                if _complete_pdf(tmp):
                    log.warning("%s: Chromium hung after printing; its complete PDF is kept", html)
                    break
                if attempt == attempts:
                    msg = f"{html}: Chromium could not print the page in {attempts} tries: {e}"
                    raise PdfError(msg) from e
                log.warning("%s: Chromium hung (%.0f s); trying again with a fresh profile", html, timeout_s)
            except OSError as e:
                msg = f"{html}: Chromium could not print the page: {e}"
                raise PdfError(msg) from e
        if not (tmp.is_file() and tmp.read_bytes().startswith(b"%PDF")):
            tail = stderr.strip().splitlines()[-1:] or ["no output"]
            msg = f"{html}: Chromium wrote no PDF ({tail[0][:200]})"
            raise PdfError(msg)
    return pdf


def _run_chromium(binary: str, html: Path, out: Path, timeout_s: float) -> str:
    """One headless print of ``html`` to ``out`` with a fresh profile; Chromium's stderr."""
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="wsi-screen-pdf-") as profile:
        proc = subprocess.run(
            chromium_print_args(binary, html, out, Path(profile)),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    return proc.stderr or f"exit code {proc.returncode}"


def _complete_pdf(path: Path) -> bool:
    """Whether ``path`` holds a whole PDF (header at the start, end-of-file marker at the end)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data.startswith(b"%PDF") and b"%%EOF" in data[-1024:]


def pdf_page_count(pdf: Path) -> int:
    """Pages of a PDF Chromium wrote (its page objects are plain ``/Type /Page`` dictionaries)."""
    data = Path(pdf).read_bytes()
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages")
