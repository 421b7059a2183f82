"""Fixtures for report tests: fake screened inputs and the Chromium binary.

Imported by the test modules (``from _fixtures import fake_out``) rather than living in a
``conftest.py``: pytest registers every conftest as the module ``conftest``, so a second one would
shadow tests/conftest.py for the suite's ``from conftest import ...`` lines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _browser import CHROMIUM_NAMES
from _fake import write_fake_report


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary, or skip (install with: apt-get install -y chromium)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (apt-get install -y chromium): browser test skipped")
    return ""


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
