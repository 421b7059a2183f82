"""Fixtures for report tests: fake screened inputs and a headless Chromium runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _fake import write_fake_report  # noqa: E402

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass
class PageRun:
    """What headless Chromium saw: the DOM after scripts ran and its console lines."""

    dom: str
    console: list[str]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary, or skip (install with: apt-get install -y chromium)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (apt-get install -y chromium): browser test skipped")
    return ""


def run_chromium(binary: str, page: Path, profile: Path, *, screenshot: Path | None = None) -> PageRun:
    """Load ``page`` from disk in headless Chromium; return the DOM (or screenshot) and console lines."""
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1400,1800",
    ]  # fmt: skip
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=90, check=False)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return PageRun(proc.stdout, console)


@pytest.fixture(scope="session")
def fake_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """OUT/<stem>/ for a fake 150-cell field whose file name carries HTML."""
    base = tmp_path_factory.mktemp("fake_run")
    src = base / 'in"puts' / "<img src=x onerror=alert(1)>&.png"
    src.parent.mkdir()
    src.write_bytes(b"placeholder for the sha256 of a fake input")
    out = base / "OUT" / "evil"
    report = write_fake_report(out, src, n_cells=150, seed=1)
    return out, report
