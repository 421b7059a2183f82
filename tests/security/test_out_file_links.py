"""A link at one of OUT's own files (index.html, summary.csv ...) stops run, batch and review apply
before anything is written: one line, exit 2, no traceback."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))

from _fake import fake_calls  # noqa: E402
from _fake import write_fake_report  # noqa: E402

from wsi_screen.cli import main  # noqa: E402
from wsi_screen.reports.corrections import screening_of  # noqa: E402

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"
MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


def _plant(out: Path, name: str, tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / name).symlink_to(target)
    return target


def _one_line_refusal(output: str, name: str) -> None:
    assert "Traceback" not in output
    assert f"{name}: is a symbolic link" in output, output


@pytest.mark.parametrize("name", ["index.html", "summary.csv", "summary.parquet"])
def test_review_refuses_before_rewriting_the_report(tmp_path: Path, name: str) -> None:
    src = tmp_path / "field.png"
    src.write_bytes(b"input bytes")
    calls, _ = fake_calls(20, 800, 600, seed=3, classes=MODEL8)
    folder = tmp_path / "OUT" / "field"
    report = write_fake_report(folder, src, calls=calls)
    target = _plant(folder.parent, name, tmp_path)
    corr = tmp_path / "c.json"
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "corrections": [{"kind": "reclassify", "cell_id": 0, "class": "EBO"}]}  # fmt: skip
    corr.write_text(json.dumps(doc))
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr), "--reviewer", "AB"])
    assert res.exit_code == 2
    _one_line_refusal(res.output, name)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert target.read_text() == "precious\n"


def test_run_refuses_before_screening(tmp_path: Path, tiny_bundle: Path) -> None:
    shutil.copy(FIELD, tmp_path / "f.jpg")
    out = tmp_path / "out"
    target = _plant(out, "index.html", tmp_path)
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "f.jpg"), "-o", str(out), "--model", str(tiny_bundle), "--device", "cpu"]
    )
    assert res.exit_code == 2
    _one_line_refusal(res.output, "index.html")
    assert not (out / "f").exists()
    assert target.read_text() == "precious\n"


def test_batch_refuses_before_screening(tmp_path: Path, tiny_bundle: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(FIELD, src / "a.jpg")
    out = tmp_path / "out"
    target = _plant(out, "summary.csv", tmp_path)
    res = CliRunner().invoke(
        main, ["batch", str(src), "-o", str(out), "--model", str(tiny_bundle), "--device", "cpu"]
    )
    assert res.exit_code == 2
    _one_line_refusal(res.output, "summary.csv")
    assert not (out / "a").exists() and not (out / "summary.parquet").exists()
    assert target.read_text() == "precious\n"
