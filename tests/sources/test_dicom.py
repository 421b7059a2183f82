"""DICOM whole-slide images through wsidicom: a series of instance files is one slide, bounded."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("wsidicom", reason="the [dicom] extra (wsidicom) is not installed")
sys.path.insert(0, str(Path(__file__).parent))

from _dicom_series import _jpeg  # noqa: E402
from _dicom_series import write_instance  # noqa: E402
from _dicom_series import write_series  # noqa: E402
from _helpers import require_shared_data  # noqa: E402

from wsi_screen.deadline import InputTimeoutError  # noqa: E402
from wsi_screen.deadline import within  # noqa: E402
from wsi_screen.errors import InputError  # noqa: E402
from wsi_screen.limits import InputTooLargeError  # noqa: E402
from wsi_screen.sources import input_sha256  # noqa: E402
from wsi_screen.sources import is_case_folder  # noqa: E402
from wsi_screen.sources import is_slide_source  # noqa: E402
from wsi_screen.sources import open_source  # noqa: E402
from wsi_screen.sources.dicom import DicomSource  # noqa: E402


def _noise(h: int = 300, w: int = 260) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _smooth(h: int = 300, w: int = 260) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([(xx * 0.9) % 256, (yy * 0.8) % 256, ((xx + yy) * 0.4) % 256]).astype(np.uint8)


def test_a_series_split_over_instance_files_reads_as_one_slide(tmp_path: Path) -> None:
    img = _noise()
    files = write_series(tmp_path / "series", img, mpp=0.5, tile=64, levels=3)
    assert len(files) == 3
    with open_source(tmp_path / "series") as src:
        assert isinstance(src, DicomSource) and is_slide_source(src)
        assert src.source_id == "series"
        assert src.dimensions == (260, 300)
        assert src.level_downsamples == pytest.approx((1.0, 2.0, 4.0), rel=0.02)
        assert src.mpp == pytest.approx(0.5) and src.mpp_origin.startswith("DICOM Pixel Measures")
        assert src.reader.startswith("wsidicom 0.")
        np.testing.assert_array_equal(src.read_region(10, 20, 100, 90), img[20:110, 10:110])
        np.testing.assert_array_equal(src.read_region(0, 0, 40, 30, level=1), img[0:60:2, 0:80:2])
        edge = src.read_region(250, 290, 20, 20)  # padded with white outside
        assert (edge[10:] == 255).all() and (edge[:, 10:] == 255).all()
        assert src.thumbnail(64).shape[0] == 64


def test_one_dcm_file_is_one_slide_too(tmp_path: Path) -> None:
    img = _noise(130, 140)
    path = write_instance(tmp_path / "one.dcm", img, mpp=0.25, tile=64)
    with open_source(path) as src:
        assert isinstance(src, DicomSource) and src.source_id == "one"
        np.testing.assert_array_equal(src.read_region(0, 0, 140, 130), img)


def test_a_dicom_file_without_suffix_is_told_by_its_content(tmp_path: Path) -> None:
    img = _noise(64, 64)
    path = write_instance(tmp_path / "1.2.3.4.5.6.1", img, mpp=0.25, tile=64)  # archives name files by UID
    with open_source(path) as src:
        assert isinstance(src, DicomSource)


@pytest.mark.parametrize(("codec", "tolerance"), [("jpeg", 3.0), ("jpeg2000", 0.0), ("jpegls", 0.0)])
def test_compressed_frames_decode(tmp_path: Path, codec: str, tolerance: float) -> None:
    img = _smooth()
    write_series(tmp_path / codec, img, tile=64, levels=2, codec=codec)
    with open_source(tmp_path / codec) as src:
        got = src.read_region(10, 20, 100, 90).astype(int)
    assert np.abs(got - img[20:110, 10:110]).mean() <= tolerance


def test_a_folder_of_several_series_is_refused_naming_them(tmp_path: Path) -> None:
    write_instance(
        tmp_path / "a.dcm", _noise(64, 64), mpp=0.5, tile=64, series="1.2.3.1", instance="1.2.3.1.1"
    )
    write_instance(
        tmp_path / "b.dcm", _noise(64, 64), mpp=0.5, tile=64, series="1.2.3.2", instance="1.2.3.2.1"
    )
    with pytest.raises(InputError, match=r"2 DICOM series \(1\.2\.3\.1, 1\.2\.3\.2\)"):
        open_source(tmp_path)


def test_links_in_a_dicom_folder_are_never_followed(tmp_path: Path) -> None:
    img = _noise()
    outside = write_series(tmp_path / "elsewhere", img, levels=2)
    folder = tmp_path / "series"
    folder.mkdir()
    outside[0].replace(folder / "level0.dcm")
    (folder / "level1.dcm").symlink_to(outside[1])  # a link to a file outside the folder
    (folder / "sub").mkdir()
    write_instance(folder / "sub" / "x.dcm", img, mpp=0.5, tile=64, series="9.9", instance="9.9.1")
    with open_source(folder) as src:
        assert src.level_downsamples == (1.0,)  # the linked level is not read, nor the sub-folder


def test_declared_size_beyond_the_limits_is_refused_before_any_frame_is_read(tmp_path: Path) -> None:
    path = write_instance(
        tmp_path / "huge.dcm", _noise(64, 64), mpp=0.5, tile=64, declared=(200_000, 200_000)
    )
    with pytest.raises(InputTooLargeError, match="max_slide_pixels"):
        open_source(path)
    path = write_instance(tmp_path / "tiny_tiles.dcm", _noise(64, 64), mpp=0.5, tile=8)
    with pytest.raises(InputTooLargeError, match="min_tile_px"):
        open_source(path)


def _frames(img: np.ndarray) -> list[bytes]:
    return [_jpeg(img[y : y + 64, x : x + 64]) for y in range(0, 128, 64) for x in range(0, 128, 64)]


def test_a_frame_declaring_more_than_its_tile_is_never_decoded(tmp_path: Path) -> None:
    img = _smooth(128, 128)
    frames = _frames(img)
    sof = frames[1].index(b"\xff\xc0")
    forged = bytearray(frames[1])
    forged[sof + 5 : sof + 9] = (60_000).to_bytes(2, "big") + (60_000).to_bytes(2, "big")
    frames[1] = bytes(forged)
    path = write_instance(tmp_path / "forged.dcm", img, mpp=0.5, tile=64, codec="jpeg", frames=frames)
    with open_source(path) as src:
        assert src.read_region(0, 0, 64, 64).mean() > 0  # the other frames read
        with pytest.raises(InputError, match="declares 60000 x 60000 px"):
            src.read_region(64, 0, 64, 64)


def test_a_corrupt_frame_fails_its_read_only(tmp_path: Path) -> None:
    from wsi_screen.tiling import TilingConfig
    from wsi_screen.tiling import iter_tiles

    img = _smooth(128, 128)
    frames = _frames(img)
    frames[3] = frames[3][:20] + b"\x00" * 50  # a damaged frame
    path = write_instance(tmp_path / "bad.dcm", img, mpp=0.5, tile=64, codec="jpeg", frames=frames)
    with open_source(path) as src:
        with pytest.raises(InputError, match="tile \\(1, 1\\)"):
            src.read_region(64, 64, 64, 64)
        bad: list[tuple[int, int]] = []
        cfg = TilingConfig(tile_size_px=64, overlap_um=1.0)
        tiles = list(iter_tiles(src, cfg, mpp=0.5, unreadable=bad))
        assert bad and len(tiles) >= 1  # skipped and counted, the others read


def test_the_time_limit_holds_between_frames(tmp_path: Path) -> None:
    write_series(tmp_path / "s", _noise(), levels=1)
    with open_source(tmp_path / "s") as src:

        def slow() -> None:
            time.sleep(0.3)
            src.read_region(0, 0, 64, 64)

        with pytest.raises(InputTimeoutError, match="per-input time limit"):
            within(0.1, "s", slow)


def test_a_dicom_folder_is_one_slide_for_run_and_batch(tmp_path: Path) -> None:
    from wsi_screen.batch.discover import discover_inputs
    from wsi_screen.case_screen import plan_run_inputs
    from wsi_screen.cases import case_from_folder

    root = tmp_path / "slides"
    write_series(root / "series", _noise(), levels=2)
    (root / "case").mkdir()
    (root / "case" / "f1.png").write_bytes(b"")  # a folder of fields stays a case
    assert not is_case_folder(root / "series") and is_case_folder(root / "case")
    with pytest.raises(InputError, match="one slide, not a case"):
        case_from_folder(root / "series")
    files, stems, cases = plan_run_inputs([root / "series"], None)
    assert files == [root / "series"] and stems == ["series"] and cases == []
    for recursive in (False, True):
        found = {b.name: b for b in discover_inputs([root], recursive=recursive)}
        assert "series" in found and not found["series"].is_case, recursive
        assert not any(name.startswith("series/") for name in found), recursive
    (listed,) = discover_inputs([root / "series"])  # the series folder given itself
    assert listed.name == "series" and not listed.is_case and listed.skip_reason is None


def test_a_dicom_folder_hash_covers_its_instances(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", _noise(), levels=2)
    before = input_sha256(tmp_path / "s")
    (tmp_path / "s" / "notes.txt").write_text("a sidecar")  # not an instance: not hashed
    assert input_sha256(tmp_path / "s") == before
    files[1].write_bytes(files[1].read_bytes()[:-2] + b"\x00\x00")
    assert input_sha256(tmp_path / "s") != before


def test_the_real_dicom_file_reads_its_pixel_size() -> None:
    path = require_shared_data("slides", "cmu-1-small-region-dicom.dcm")
    with open_source(path) as src:
        assert isinstance(src, DicomSource)
        assert src.dimensions == (1000, 2459)
        assert src.mpp == pytest.approx(2.004) and src.mpp_y == pytest.approx(2.004)
        tile = src.read_region(300, 1000, 256, 256)
        assert tile.std() > 5  # tissue, not padding


def test_run_and_batch_screen_a_dicom_folder_as_one_slide(tmp_path: Path, tiny_bundle: Path) -> None:
    import json

    from click.testing import CliRunner

    from wsi_screen.cli import main

    root = tmp_path / "slides"
    write_series(root / "series", _smooth(), mpp=0.5, levels=2, codec="jpeg")
    common = ["--model", str(tiny_bundle), "--config", str(tmp_path / "fast.toml")]
    (tmp_path / "fast.toml").write_text("[report]\nviewer = false\n")
    res = CliRunner().invoke(main, ["run", str(root / "series"), "-o", str(tmp_path / "run"), *common])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "run" / "series" / "report.json").read_text())["input"]
    assert (got["kind"], got["levels"], got["mpp"], got["reader"].split()[0]) == ("slide", 2, 0.5, "wsidicom")
    res = CliRunner().invoke(
        main, ["batch", str(root), "-o", str(tmp_path / "batch"), "--reader", "dicom", *common]
    )
    assert res.exit_code == 0, res.output
    assert "1 input(s): 1 screened" in res.output
    got = json.loads((tmp_path / "batch" / "series" / "report.json").read_text())["input"]
    assert got["sha256"] == input_sha256(root / "series") and got["reader"].startswith("wsidicom")
