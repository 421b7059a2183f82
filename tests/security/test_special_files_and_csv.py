"""FIFOs and devices are listed as skipped, never opened; CSV cells never start as a formula or a
control character; every page's CSP forbids form posts and a planted ``<base>``."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from wsi_screen.batch.discover import discover_inputs
from wsi_screen.batch.summary import spreadsheet_safe
from wsi_screen.cases import case_from_files
from wsi_screen.cases import case_from_folder
from wsi_screen.textsafe import csv_cell

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "wsi_screen" / "reports" / "templates"
CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def _field(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = np.full((240, 320, 3), 225, np.uint8)
    for _ in range(6):
        x, y = int(rng.integers(30, 290)), int(rng.integers(30, 210))
        cv2.circle(img, (x, y), 12, (120, 60, 150), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _ends(fn: Callable[[], str], seconds: float = 20) -> str:
    """``fn()``, failing the test (not hanging it) when it blocks, as opening a FIFO does."""
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still running after {seconds} s: a FIFO was opened"
    return out[0]


@pytest.mark.parametrize("ch", CONTROL, ids=[f"x{ord(c):02x}" for c in CONTROL])
def test_a_cell_starting_with_any_control_character_is_text(ch: str) -> None:
    assert csv_cell(ch + "run.png") == "'" + ch + "run.png"
    frame = spreadsheet_safe(pl.DataFrame({"input": [ch + "run.png", "plain.png"]}))
    assert frame["input"].to_list() == ["'" + ch + "run.png", "plain.png"]  # the summary's polars path


def test_formula_starts_still_quoted_and_plain_text_left_alone() -> None:
    for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\uff1dcmd|' /c calc'!A0"]:  # the last: full-width =
        assert csv_cell(bad) == "'" + bad
    for good in ["a=b.png", "BLA", "\u00e9t\u00e9.png", "1.5"]:
        assert csv_cell(good) == good


def test_per_image_csv_of_evaluate_detector_is_neutralised() -> None:
    from wsi_screen.cli.detector import _per_image_csv

    text = _per_image_csv(
        [{"image": "\x1b]0;pwn\x07=1.png", "n_gt": 1, "n_pred": 2, "tp_iou": 1, "tp_centre": 1}]
    )
    (row,) = list(csv.DictReader(text.splitlines()))
    assert row["image"].startswith("'\x1b")
    assert row["n_pred"] == "2"


def test_every_page_template_forbids_forms_and_base() -> None:
    pages = [p for p in TEMPLATES.glob("*.j2") if "<html" in p.read_text(encoding="utf-8")]
    assert {p.name for p in pages} >= {"report.html.j2", "index.html.j2", "case.html.j2"}
    for page in pages:
        (csp,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page.read_text())
        assert "form-action 'none'" in csp and "base-uri 'none'" in csp, page.name


@fifo_only
def test_discovery_lists_fifos_and_devices_as_skipped(tmp_path: Path) -> None:
    _field(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "null.tif").symlink_to("/dev/null")
    items = {i.name: i for i in discover_inputs([tmp_path])}
    assert items["a.png"].skip_reason is None
    assert items["pipe.png"].skip_reason == "not a regular file (a FIFO): never opened"
    assert items["pipe.json"].skip_reason == "not a regular file (a FIFO): never opened"
    assert items["null.tif"].skip_reason == "not a regular file (a character device): never opened"
    (given,) = discover_inputs([tmp_path / "pipe.png"])  # named on the command line
    assert given.skip_reason is not None and "FIFO" in given.skip_reason


@fifo_only
def test_case_folders_skip_fifos(tmp_path: Path) -> None:
    _field(tmp_path / "f1.png")
    os.mkfifo(tmp_path / "f2.png")
    case = case_from_folder(tmp_path)
    assert case.fields == (tmp_path / "f1.png",)
    assert [(s.path.name, "FIFO" in s.reason) for s in case.skipped] == [("f2.png", True)]
    assert len(_ends(case.digest)) == 64  # reads the fields only: a FIFO opened would block
    named = case_from_files([tmp_path / "f1.png", tmp_path / "f2.png"], "c")
    assert named.fields == (tmp_path / "f1.png",) and len(named.skipped) == 1


@fifo_only
def test_batch_with_fifos_ends_and_neutralises_names(tmp_path: Path, tiny_bundle: Path) -> None:
    """A FIFO at the top and inside a case, an ESC-named field: the batch ends, lists them, quotes the name."""
    folder = tmp_path / "in"
    _field(folder / "\x1b[31mred.png", seed=1)
    os.mkfifo(folder / "pipe.png")
    _field(folder / "case1" / "f1.png", seed=2)
    os.mkfifo(folder / "case1" / "f2.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from wsi_screen.cli import main; main()", "batch", str(folder)]
    cmd += ["-o", str(out), "--model", str(tiny_bundle), "--device", "cpu"]
    # a FIFO opened would block for ever: the timeout fails the test instead
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["input"]: r for r in csv.DictReader(f)}
    assert rows["pipe.png"]["status"] == "skipped" and "FIFO" in rows["pipe.png"]["error_message"]
    assert rows["case1"]["status"] == "ok"
    assert rows["'\x1b[31mred.png"]["status"] == "ok"  # ESC first: quoted, text to a spreadsheet
    case = json.loads((out / "case1" / "report.json").read_text(encoding="utf-8"))
    assert any(s["path"].endswith("f2.png") and "FIFO" in s["reason"] for s in case["case"]["skipped"])
    for page in [out / "index.html", *out.glob("*/report.html")]:
        head = page.read_text(encoding="utf-8")[:3000]
        assert "form-action 'none'" in head and "base-uri 'none'" in head, page
