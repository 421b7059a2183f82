"""The issue's check on a held-out field: reviewed cells of classes the model lacks count.

examples/case_matek/field_01.jpg is made of held-out Matek patches (examples/make_example_case.py);
it is screened with the shipped default model (8 classes: no EBO, no PLM), then 3 cells are
corrected to EBO and 1 to PLM with `wsi-screen review apply`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.reports.corrections import screening_of

FIELD = Path(__file__).resolve().parents[2] / "examples" / "case_matek" / "field_01.jpg"


@pytest.mark.skipif(not FIELD.exists(), reason="examples/case_matek/field_01.jpg not in this checkout")
def test_three_erythroblasts_and_a_plasma_cell_on_a_held_out_field(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        main, ["run", str(FIELD), "-o", str(tmp_path / "out"), "--mpp", "0.0862", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    folder = tmp_path / "out" / "field_01"
    report = json.loads((folder / "report.json").read_text())
    assert "EBO" not in report["model"]["classes"] and report["me_ratio"]["status"] == "not_assessable"
    ids = list(range(4))
    doc = {"format": "wsi-screen-corrections", "version": 2, "input_sha256": report["input"]["sha256"],
           "screening": screening_of(report), "corrections": [{"kind": "reclassify", "cell_id": i, "class": c} for i, c in zip(ids, ["EBO", "EBO", "EBO", "PLM"], strict=True)]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(doc))
    res = runner.invoke(main, ["review", "apply", str(folder), str(tmp_path / "c.json"), "--reviewer", "AB"])
    assert res.exit_code == 0, res.output
    new = json.loads((folder / "report.json").read_text())
    assert new["differential"]["EBO"]["count"] == 3
    assert new["differential"]["PLM"]["count"] == 1
    assert new["me_ratio"]["status"] == "assessed" and new["me_ratio"]["erythroid"] == 3
    assert new["me_ratio"]["value"] == round(new["me_ratio"]["myeloid"] / 3, 3)
    assert new["review"]["original"]["me_ratio"]["status"] == "not_assessable"  # the model's figures beside
    assert new["review"]["classes_reviewer_only"] == ["EBO", "PLM"]
    assert new["cells_detected"] == report["cells_detected"]
