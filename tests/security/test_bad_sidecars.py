"""A bad identifiers sidecar fails its own input only: the batch goes on, summarises and resumes.

(The resume also meets a deeply nested ledger line and report.json planted in OUT: neither stops it.)

A deeply nested ``<input>.ids.json`` ended ``run`` and ``batch`` in a RecursionError traceback with
no summary, and every resume crashed the same way; a 400 MB sidecar was read whole. Sidecars are
now read through the bounded reader (:mod:`wsi_screen.textfiles`): a size cap checked before
reading, a nesting limit, and a one-line error that fails that input alone.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest
from _synthetic import grid_centres
from _synthetic import synthetic_field
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.errors import InputError
from wsi_screen.reports.identifiers import MAX_SIDECAR_BYTES
from wsi_screen.reports.identifiers import read_sidecar


def _field(path: Path, seed: int) -> Path:
    img = synthetic_field(400, 300, grid_centres(400, 300, 150), seed=seed)
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def _sidecars(folder: Path) -> dict[str, bytes]:
    """Input name -> its bad sidecar's bytes."""
    oversized = b'{"sample_id": "S1"' + b" " * (MAX_SIDECAR_BYTES + 10) + b"}"
    return {"b_nested.png": b"[" * 30_000 + b"]" * 30_000, "c_oversized.png": oversized}


def _batch(src: Path, out: Path, bundle: Path) -> tuple[int, str, dict[str, dict[str, str]]]:
    argv = [
        "--log-level",
        "warning",
        "batch",
        str(src),
        "-o",
        str(out),
        "--model",
        str(bundle),
        "--device",
        "cpu",
    ]
    res = CliRunner().invoke(main, argv, catch_exceptions=False)
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["input"]: r for r in csv.DictReader(f)}
    return res.exit_code, res.output, rows


def test_bad_sidecars_fail_their_input_only(tiny_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(("a_clean.png", "b_nested.png", "c_oversized.png", "d_clean.png")):
        _field(src / name, seed=i)
    for name, data in _sidecars(src).items():
        (src / f"{name}.ids.json").write_bytes(data)
    (src / "d_clean.png.ids.json").write_text('{"sample_id": "S-4", "patient_id": "P-4"}')
    out = tmp_path / "out"
    for attempt in ("first", "resume"):
        if attempt == "resume":  # planted in OUT: a deep ledger line and report.json are skipped, not fatal
            with (out / "ledger.jsonl").open("ab") as f:
                f.write(b"[" * 30_000 + b"\n" + b'{"input": ' * 5_000 + b"\n")
            (out / "a_clean" / "report.json").write_bytes(b"[" * 30_000 + b"]" * 30_000)
        code, output, rows = _batch(src, out, tiny_bundle)
        assert code == 1, (attempt, output[-2000:])
        assert "Traceback" not in output and "RecursionError" not in output
        for name in ("a_clean.png", "d_clean.png"):
            assert rows[name]["status"] == "ok", (attempt, rows[name])
            assert (out / Path(name).stem / "report.json").is_file()
        for name, reason in (("b_nested.png", "nested more than"), ("c_oversized.png", "bytes")):
            row = rows[name]
            assert row["status"] == "failed", (attempt, row)
            message = row["error_message"]
            assert reason in message and f"{name}.ids.json" in message and "\n" not in message
            assert not (out / Path(name).stem / "report.json").exists()


def test_read_sidecar_bounded(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    sidecar = tmp_path / "x.png.ids.json"
    for data, reason in (
        (b"[" * 30_000, "nested more than"),
        (b" " * (MAX_SIDECAR_BYTES + 1), "bytes"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not valid JSON"),
        (b"[1]", "expected a JSON object"),
    ):
        sidecar.write_bytes(data)
        with pytest.raises(InputError, match=reason) as e:
            read_sidecar(image)
        assert "\n" not in str(e.value) and str(sidecar) in str(e.value)
    sidecar.write_text('{"sample_id": "S-1"}')
    ids = read_sidecar(image)
    assert ids is not None and ids.sample_id == "S-1"


def test_run_with_nested_sidecar_fails_that_input(tiny_bundle: Path, tmp_path: Path) -> None:
    image = _field(tmp_path / "f.png", seed=7)
    (tmp_path / "f.png.ids.json").write_bytes(b"[" * 30_000 + b"]" * 30_000)
    argv = ["run", str(image), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle), "--device", "cpu"]
    res = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "nested more than" in res.output and "Traceback" not in res.output
