"""`wsi-screen run CASE_DIR` and `--case NAME`: one pooled report over the fields of a specimen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.corrections import screening_of

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "examples" / "case_matek"


def _case(tmp_path: Path) -> Path:
    folder = tmp_path / "patient_7"
    shutil.copytree(CASE, folder)
    (folder / "field_01.json").write_text("{}")  # sidecars: listed as skipped, never screened
    (folder / "notes.txt").write_text("smear from 3 Dec")
    return folder


def test_case_folder_gives_one_pooled_report(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(folder), "--mpp", "0.0862", "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "patient_7" / "report.json").read_text())
    assert report["input"]["kind"] == "case"
    assert [f["name"] for f in report["fields"]] == ["field_01", "field_02", "field_03", "field_04"]
    per_field = [
        json.loads((out / "patient_7" / f["report"]).with_name("report.json").read_text())
        for f in report["fields"]
    ]
    assert report["cells_detected"] == sum(r["cells_detected"] for r in per_field)
    assert report["cells_counted"] == sum(r["cells_counted"] for r in per_field)
    for code, d in report["differential"].items():
        assert d["count"] == sum(r["differential"][code]["count"] for r in per_field)
    cells = pl.read_parquet(out / "patient_7" / "cells.parquet")
    assert cells.height == report["cells_detected"]
    assert cells["field"].unique().sort().to_list() == ["field_01", "field_02", "field_03", "field_04"]
    assert cells["cell_id"].to_list() == list(range(cells.height))
    assert sorted(Path(s["path"]).name for s in report["case"]["skipped"]) == ["field_01.json", "notes.txt"]
    html = (out / "patient_7" / "report.html").read_text()
    assert html.index('id="pooled"') < html.index('id="fields"') and html.count("data:image/jpeg") == 4
    assert "patient_7" in (out / "index.html").read_text()
    assert not (out / "field_01").exists()  # a sidecar never takes an output name


def test_case_option_and_a_failed_field(tmp_path: Path, tiny_bundle: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    shutil.copy(CASE / "field_01.jpg", a)
    b.write_bytes(b"not an image")
    out = tmp_path / "out"
    args = [
        "run",
        str(a),
        str(b),
        "--case",
        "P1",
        "-o",
        str(out),
        "--model",
        str(tiny_bundle),
        "--device",
        "cpu",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    report = json.loads((out / "P1" / "report.json").read_text())
    assert report["case"]["n_fields"] == 2 and report["case"]["n_fields_screened"] == 1
    failed = [f for f in report["fields"] if f.get("failure")]
    assert len(failed) == 1 and failed[0]["failure"]["stage"] == "read"
    assert "b.png [read]" in res.output
    bad = CliRunner().invoke(main, ["run", str(tmp_path), "--case", "X", "-o", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "give field files, not folders" in bad.output


def test_a_blurred_field_is_left_out_of_its_case_with_its_reason(tmp_path: Path, tiny_bundle: Path) -> None:
    import _regions_synthetic as rs
    import cv2

    folder = tmp_path / "smear"
    folder.mkdir()
    mono = rs.monolayer(1200, 800, mpp=0.25, seed=1)[0]
    for name, img in (("f1", mono), ("f2", rs.monolayer(1200, 800, mpp=0.25, seed=2)[0]),
                      ("f3", rs.blurred(mono, sigma_um=0.6, mpp=0.25))):  # fmt: skip
        cv2.imwrite(str(folder / f"{name}.png"), img[:, :, ::-1])
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["run", str(folder), "--mpp", "0.25", "-o", str(out), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "smear" / "report.json").read_text())
    status = {f["name"]: f["status"] for f in report["fields"]}
    assert status == {"f1": "counted", "f2": "counted", "f3": "excluded"}
    f3 = next(f for f in report["fields"] if f["name"] == "f3")
    assert "blurred" in f3["excluded_because"]
    assert (report["case"]["n_fields_counted"], report["case"]["n_fields_excluded"]) == (2, 1)
    counted = [f for f in report["fields"] if f["status"] == "counted"]
    assert report["cells_detected"] == sum(f["cells_detected"] for f in counted)
    assert set(pl.read_parquet(out / "smear" / "cells.parquet")["field"].unique()) == {"f1", "f2"}
    assert (out / "smear" / "fields" / "f3" / "report.json").exists()  # it keeps its own report
    assert "left out" in (out / "smear" / "report.html").read_text()


def test_reviewing_a_field_recomputes_its_case(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["run", str(_case(tmp_path)), "--mpp", "0.0862", "-o", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    case_dir = out / "patient_7"
    before = json.loads((case_dir / "report.json").read_text())
    field_dir = case_dir / "fields" / "field_02"
    field = json.loads((field_dir / "report.json").read_text())
    cells = pl.read_parquet(field_dir / "cells.parquet")
    ids = cells.filter(~pl.col("predicted_class").is_in(["ART", "NIF"]))["cell_id"].to_list()[:3]
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": field["input"]["sha256"],
           "screening": screening_of(field), "corrections": [{"kind": "reclassify", "cell_id": i, "class": "EBO"} for i in ids]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(doc))
    res = CliRunner().invoke(
        main, ["review", "apply", str(field_dir), str(tmp_path / "c.json"), "--reviewer", "AB"]
    )
    assert res.exit_code == 0, res.output
    assert "case patient_7: pooled figures recomputed" in res.output
    case = json.loads((case_dir / "report.json").read_text())
    assert case["review"]["fields_reviewed"] == ["field_02"]
    assert case["differential"]["EBO"]["count"] == 3
    assert case["cells_counted"] == before["cells_counted"]  # reclassified among counted classes
    assert case["me_ratio"]["status"] == "assessed"
    assert case["review"]["original"]["differential"] == before["differential"]
    pooled = pl.read_parquet(case_dir / "cells.parquet")
    assert pooled.filter(pl.col("reviewed_class") == "EBO").height == 3
    assert set(pooled["field"].unique()) == {f["name"] for f in before["fields"]}
    assert "Reviewed:" in (case_dir / "report.html").read_text()
