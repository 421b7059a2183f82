"""`wsi-screen run` on the real scanner files in ../shared/data/slides (skipped, with the reason, without them).

They are H&E tissue sections, not smears: what is checked is reading (reader, pixel size, levels),
not the differential.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import require_shared_data
from click.testing import CliRunner

from wsi_screen.cli import main

pytest.importorskip("wsidicom", reason="the [dicom] extra (wsidicom) is not installed")

CASES = {
    # file: (output name, reader, pixel size, where it comes from)
    "CMU-1-Small-Region.svs": ("CMU-1-Small-Region", "tifffile", 0.499, "Aperio MPP (ImageDescription)"),
    "tcga-cr-7395-01a-01-ts1-jp2k.svs": ("tcga-cr-7395-01a-01-ts1-jp2k", "tiffslide", None, None),
    "cmu-1-small-region-dicom.dcm": (
        "cmu-1-small-region-dicom",
        "wsidicom",
        2.004,
        "DICOM Pixel Measures (PixelSpacing)",
    ),
}


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> tuple[Path, str]:
    """The three real files screened in one run (the tiny model: reading is what is tested)."""
    files = [require_shared_data("slides", name) for name in CASES]
    folder = tmp_path_factory.mktemp("real")
    config = folder / "fast.toml"
    config.write_text("[report]\nviewer = false\n")  # no deep-zoom pyramid: reading is what is tested
    args = [
        "run",
        *map(str, files),
        "-o",
        str(folder / "out"),
        "--model",
        str(tiny_bundle),
        "--config",
        str(config),
    ]
    res = CliRunner().invoke(main, ["--log-level", "warning", *args])
    assert res.exit_code == 0, res.output
    return folder / "out", res.output


@pytest.mark.parametrize("name", list(CASES))
def test_each_real_file_reads_with_its_reader_and_pixel_size(screened: tuple[Path, str], name: str) -> None:
    out, _ = screened
    stem, reader, mpp, origin = CASES[name]
    report = json.loads((out / stem / "report.json").read_text())
    got = report["input"]
    assert got["reader"].split()[0] == reader and len(got["reader"].split()) == 2, got["reader"]
    if mpp is None:  # pixel size stripped from the file: the model's scale, stated as a warning
        assert got["mpp_source"] in ("model_default", "red_cells") and got["mpp_from"] is None
        assert any("no pixel size in the file" in w or "red cells" in w for w in report["warnings"])
    else:
        assert got["mpp_source"] == "file" and got["mpp"] == pytest.approx(mpp) and got["mpp_from"] == origin


def test_the_jpeg_2000_slide_is_read_as_a_two_level_pyramid(screened: tuple[Path, str]) -> None:
    out, _ = screened
    got = json.loads((out / "tcga-cr-7395-01a-01-ts1-jp2k" / "report.json").read_text())["input"]
    assert (got["width"], got["height"], got["levels"], got["kind"]) == (4443, 3567, 2, "slide")


@pytest.mark.parametrize(
    ("name", "mpp", "origin"),
    [
        ("CMU-1-Small-Region.svs", 0.499, "openslide.mpp-x/y (aperio)"),
        ("tcga-cr-7395-01a-01-ts1-jp2k.svs", None, None),
        ("cmu-1-small-region-dicom.dcm", 2.004, "openslide.mpp-x/y (dicom)"),
    ],
)
def test_each_real_file_reads_through_openslide_too(name: str, mpp: float | None, origin: str | None) -> None:
    pytest.importorskip("openslide", reason="the [openslide] extra is not installed")
    from wsi_screen.sources import open_source
    from wsi_screen.sources import resolve_mpp

    path = require_shared_data("slides", name)
    with open_source(path, reader="openslide") as src:
        assert src.reader.startswith("openslide 4.")
        w, h = src.dimensions
        assert src.read_region(w // 2, h // 2, 256, 256).std() > 5  # tissue, decoded (JPEG, JPEG 2000)
        got = resolve_mpp(src, user_mpp=None, model_mpp=0.0862)
    assert (got.origin, got.source) == (origin, "file" if mpp else "model_default")
    if mpp is not None:
        assert got.mpp == pytest.approx(mpp)
