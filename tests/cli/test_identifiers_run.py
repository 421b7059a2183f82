"""Sample and patient identifiers reach report.json and the page from options, a manifest or a sidecar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from wsi_screen.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, ["--log-level", "warning", "run", *args], catch_exceptions=False)


def test_identifiers_from_option_sidecar_and_manifest(
    tmp_path: Path, tiny_bundle: Path, field_2452: tuple
) -> None:
    field, _ = field_2452
    a, b = tmp_path / "in" / "a.png", tmp_path / "in" / "b.png"
    a.parent.mkdir()
    shutil.copy(field, a)
    shutil.copy(field, b)
    (tmp_path / "in" / "a.png.ids.json").write_text(
        json.dumps({"sample_id": "BM-2026-0042", "patient_id": "P 17"})
    )
    out = tmp_path / "out"
    res = _run(str(a), str(b), "-o", str(out), "--model", str(tiny_bundle))
    assert res.exit_code == 0, res.output
    ra = json.loads((out / "a" / "report.json").read_text())
    assert ra["identifiers"] == {"sample_id": "BM-2026-0042", "patient_id": "P 17", "source": "sidecar",
                                 "file": "a.png.ids.json"}  # fmt: skip
    assert json.loads((out / "b" / "report.json").read_text())["identifiers"] is None  # never guessed
    page_a = (out / "a" / "report.html").read_text()
    assert '<dd id="sample-id">BM-2026-0042</dd>' in page_a
    assert 'id="patient-id"><span class="missing">not given' in (out / "b" / "report.html").read_text()
    # an option wins over the sidecar; it names one input only
    res = _run(str(a), "-o", str(tmp_path / "o2"), "--model", str(tiny_bundle), "--sample-id", "S1")
    assert res.exit_code == 0, res.output
    assert (
        json.loads((tmp_path / "o2" / "a" / "report.json").read_text())["identifiers"]["source"] == "option"
    )
    res = CliRunner().invoke(main, ["run", str(a), str(b), "-o", str(tmp_path / "o3"), "--sample-id", "S1"])
    assert res.exit_code == 2 and "--ids FILE" in res.output
    # a manifest names inputs by path (relative to it)
    manifest = tmp_path / "in" / "ids.csv"
    manifest.write_text("input,sample_id,patient_id\nb.png,BM-7,P-9\n")
    res = _run(str(b), "-o", str(tmp_path / "o4"), "--model", str(tiny_bundle), "--ids", str(manifest))
    assert res.exit_code == 0, res.output
    ids = json.loads((tmp_path / "o4" / "b" / "report.json").read_text())["identifiers"]
    assert (ids["sample_id"], ids["source"]) == ("BM-7", "manifest")
    bad = tmp_path / "bad.csv"
    bad.write_text("input,sample_id,colour\nb.png,x,red\n")
    res = CliRunner().invoke(main, ["run", str(b), "-o", str(tmp_path / "o5"), "--ids", str(bad)])
    assert res.exit_code == 2 and "bad.csv" in res.output and "unknown column" in res.output
