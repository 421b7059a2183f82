"""The red cells check the pixel size of every input, and stand in for a missing one (run)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _synthetic_rbc import red_cell_field
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.scale_check import check_scale
from wsi_screen.scale_config import ScaleConfig
from wsi_screen.sources import ResolvedMpp
from wsi_screen.sources.field import FieldSource


@pytest.fixture(scope="module")
def smear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1200 x 1000 px smear field at 0.2 um/px (red cells 37.5 px across), no pixel size in the file."""
    path = tmp_path_factory.mktemp("smear") / "smear.png"
    cv2.imwrite(str(path), red_cell_field(1200, 1000, mpp=0.2, n_rbc=180, seed=3)[:, :, ::-1])
    return path


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["run", *args])
    return res.exit_code, res.output


def test_missing_pixel_size_is_measured_from_red_cells(
    smear: Path, tmp_path: Path, tiny_bundle: Path
) -> None:
    code, out = _run(str(smear), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle))
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "smear" / "report.json").read_text())
    inp = report["input"]
    assert inp["mpp_source"] == "red_cells"
    assert inp["mpp"] == pytest.approx(0.2, rel=0.05)
    est = inp["mpp_estimate"]
    assert est["used"] is True and est["n_cells"] >= 15
    assert est["interval"][0] <= est["mpp"] <= est["interval"][1]
    assert any("red cells" in w for w in report["warnings"])
    assert report["config"]["scale"]["rbc_diameter_um"] == 7.5  # echoed
    page = (tmp_path / "o" / "smear" / "report.html").read_text()
    assert 'id="mpp-estimate"' in page and "red cells taken as 7.5" in page and ", used" in page


def test_a_given_pixel_size_that_red_cells_contradict_is_warned(
    smear: Path, tmp_path: Path, tiny_bundle: Path
) -> None:
    code, out = _run(str(smear), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle), "--mpp", "0.3")
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "smear" / "report.json").read_text())
    assert (report["input"]["mpp"], report["input"]["mpp_source"]) == (0.3, "user")  # the user's value wins
    est = report["input"]["mpp_estimate"]
    assert est["used"] is False and est["difference"] == pytest.approx(-1 / 3, abs=0.05)
    assert any("below the --mpp 0.3" in w for w in report["warnings"])
    # close enough: recorded, no warning
    code, _ = _run(str(smear), "-o", str(tmp_path / "p"), "--model", str(tiny_bundle), "--mpp", "0.21")
    report = json.loads((tmp_path / "p" / "smear" / "report.json").read_text())
    assert not any("red cells" in w for w in report["warnings"])


def test_no_red_cells_no_estimate_and_the_model_scale_as_before() -> None:
    src = FieldSource(np.full((300, 400, 3), 230, np.uint8), source_id="blank", path=Path("blank.png"))
    given = ResolvedMpp(0.0862, "model_default", "assumed")
    resolved, record = check_scale(src, given, ScaleConfig())
    assert resolved == given
    assert record is not None and record["mpp"] is None and "red cells" in record["reason"]
    tiny = FieldSource(np.full((2, 2, 3), 230, np.uint8), source_id="dot", path=Path("dot.png"))
    resolved, record = check_scale(tiny, given, ScaleConfig())  # too small to measure: never fails the input
    assert resolved == given and record is not None and record["mpp"] is None
    assert check_scale(src, given, ScaleConfig(red_cells=False)) == (given, None)


def test_scale_section_is_checked() -> None:
    with pytest.raises(ConfigError, match="scale.rbc_diameter_um"):
        ScreenConfig.from_dict({"scale": {"rbc_diameter_um": 1e9}})
    with pytest.raises(ConfigError, match="scale"):
        ScreenConfig.from_dict({"scale": {"nope": 1}})
