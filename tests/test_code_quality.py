"""The package stays ruff-clean and passes mypy --strict (configured in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]' installs it)")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_clean() -> None:
    res = _run("ruff", "check", "wsi_screen", "tests", "benchmarks", "examples")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict(tmp_path: Path) -> None:
    res = _run("mypy", "--cache-dir", str(tmp_path / "mypy_cache"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Success" in res.stdout
