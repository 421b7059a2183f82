"""Every small JSON/CSV file the product reads back is read bounded: size cap, nesting cap, one line.

Deeply nested JSON made ``json.loads`` raise RecursionError (a traceback) wherever a file was
parsed directly: the ledger, a report.json met on resume or by the index, report_assets.json,
viewer.json. A FIFO in place of such a file blocked the reader forever.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from wsi_screen.batch.summary import read_report
from wsi_screen.errors import InputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.ledger import MAX_LINE_BYTES
from wsi_screen.ledger import Ledger
from wsi_screen.reports.assets import MAX_ASSETS_BYTES
from wsi_screen.reports.assets import read_assets
from wsi_screen.reports.deepzoom import VIEWER_DIR
from wsi_screen.reports.deepzoom import VIEWER_JSON
from wsi_screen.reports.deepzoom import read_deep_zoom
from wsi_screen.reports.identifiers import MAX_MANIFEST_BYTES
from wsi_screen.reports.identifiers import read_manifest
from wsi_screen.reports.index import write_index_html
from wsi_screen.textfiles import read_bytes

DEEP = b"[" * 30_000 + b"]" * 30_000


def test_ledger_skips_deep_and_long_lines(tmp_path: Path) -> None:
    good = {
        "input": "a.png",
        "stem": "a",
        "key": "k",
        "input_sha256": "s",
        "status": "ok",
        "finished_at": "t",
    }
    path = tmp_path / "ledger.jsonl"
    lines = [
        DEEP,
        json.dumps({**good, "input": ["x"]}).encode(),
        b'{"input": "' + b"x" * MAX_LINE_BYTES + b'"}',
    ]
    path.write_bytes(b"\n".join([*lines, json.dumps(good).encode(), b'{"input": "torn']))
    ledger = Ledger(path)
    assert ledger.load() == 1
    assert ledger.done("a.png", "a", "k") is not None


def test_planted_report_json_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_bytes(DEEP)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text('{"qc": [], "input": 3}')
    assert read_report(tmp_path / "a" / "report.json") is None
    page = write_index_html(tmp_path).read_text(encoding="utf-8")  # both skipped, the page is written
    assert "report.html" not in page


@pytest.mark.parametrize("kind", ["deep", "huge"])
def test_report_assets_bounded(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "report_assets.json"
    if kind == "huge":  # a sparse file as large as claimed, without writing it
        with path.open("wb") as f:
            f.truncate(MAX_ASSETS_BYTES + 1)
    else:
        path.write_bytes(DEEP)
    with pytest.raises(WsiScreenError, match="not a valid report assets file") as e:
        read_assets(path)
    assert "\n" not in str(e.value)


def test_viewer_json_bounded(tmp_path: Path) -> None:
    (tmp_path / VIEWER_DIR).mkdir()
    (tmp_path / VIEWER_DIR / VIEWER_JSON).write_bytes(DEEP)
    with pytest.raises(WsiScreenError, match="nested more than"):
        read_deep_zoom(tmp_path)


def test_manifest_bounded(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    with path.open("wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)
    with pytest.raises(InputError, match="bytes, more than"):
        read_manifest(path)
    path.write_bytes(b"\xef\xbb\xbfinput,sample_id\na.png,S-1\n")  # a BOM is still accepted
    assert read_manifest(path).by_path[(tmp_path / "a.png").resolve()].sample_id == "S-1"


def test_fifo_and_device_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.ids.json"
    os.mkfifo(fifo)
    errors: list[str] = []

    def read() -> None:
        for path in (fifo, Path("/dev/zero")):
            try:
                read_bytes(path, error=InputError, max_bytes=100)
            except InputError as e:
                errors.append(str(e))

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert len(errors) == 2 and all("not a regular file" in e for e in errors), errors
