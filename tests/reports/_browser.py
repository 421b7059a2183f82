"""Headless Chromium helpers for the report tests (a uniquely named module: ``conftest`` names clash)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass
class PageRun:
    """What headless Chromium saw: the DOM after scripts ran and its console lines."""

    dom: str
    console: list[str]


def run_chromium(
    binary: str,
    page: Path,
    profile: Path,
    *,
    screenshot: Path | None = None,
    virtual_time_ms: int | None = None,
    timeout_s: float = 90,
) -> PageRun:
    """Load ``page`` from disk in headless Chromium; return the DOM (or screenshot) and console lines.

    ``virtual_time_ms`` lets the page's timers run for that much virtual time before the DOM is taken.
    """
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1400,1800",
    ]  # fmt: skip
    if virtual_time_ms is not None:
        args.append(f"--virtual-time-budget={virtual_time_ms}")
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    try:
        proc = subprocess.run(
            [*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:  # headless Chromium now and then hangs: once more, fresh profile
        fresh = profile.with_name(profile.name + "-retry")
        args = [a.replace(f"--user-data-dir={profile}", f"--user-data-dir={fresh}") for a in args]
        proc = subprocess.run(
            [*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return PageRun(proc.stdout, console)
