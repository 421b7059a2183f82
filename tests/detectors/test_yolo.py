"""The YOLO adapter: offline, quiet, thread-safe; trains on generated fields and finds their cells."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _helpers import match_centres
from _helpers import require_shared_data
from _synthetic import grid_centres
from _synthetic import synthetic_field
from click.testing import CliRunner
from test_yolo_synthetic import CELL_UM
from test_yolo_synthetic import DISC_MPP
from test_yolo_synthetic import random_centres
from test_yolo_synthetic import write_disc_dataset

from wsi_screen.cli import main
from wsi_screen.config import TilingConfig
from wsi_screen.detectors import create_detector
from wsi_screen.detectors.yolo import MODELS_DIR
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.detectors.yolo import content_window
from wsi_screen.detectors.yolo import resolve_model_dir
from wsi_screen.errors import ConfigError
from wsi_screen.errors import ModelBundleError
from wsi_screen.sources import FieldSource
from wsi_screen.stages import detect_cells
from wsi_screen.stages import seam_tiles
from wsi_screen.training.yolo_train import train_yolo
from wsi_screen.types import Tile

SHIPPED = MODELS_DIR / "yolo-wbc" / "weights.safetensors"


def _model_folder(weights: Path, folder: Path, mpp: float | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, folder / weights.name)
    cfg = {"name": folder.name, "class_names": ["cell"], "mpp": mpp}
    (folder / "detector.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolov8n built from its yaml, trained one epoch at 64 px: may find nothing yet."""
    root = tmp_path_factory.mktemp("yolo1")
    data = write_disc_dataset(root / "data", n_train=8, n_val=2)
    from wsi_screen.training.detector_convert import prepare_yolo_dataset

    yaml_path = prepare_yolo_dataset(data, root / "prepared")
    weights = train_yolo(yaml_path, root / "model", arch="yolov8n", epochs=1, imgsz=64, batch=8)
    return _model_folder(weights, root / "tiny-yolo", DISC_MPP)


def test_thread_counts_and_env_restored(one_epoch: Path) -> None:
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    omp_before = os.environ.get("OMP_NUM_THREADS")
    try:
        torch.set_num_threads(3)
        cv2.setNumThreads(3)
        det = YoloDetector(one_epoch, conf=0.01)
        det.predict_boxes(np.full((96, 128, 3), 230, np.uint8))  # select_device('cpu') runs here
        assert torch.get_num_threads() == 3
        assert cv2.getNumThreads() == 3
        assert os.environ.get("OMP_NUM_THREADS") == omp_before
        assert os.environ["YOLO_OFFLINE"] == "1"
    finally:
        torch.set_num_threads(torch_before)
        cv2.setNumThreads(cv2_before)


_FRESH_PROCESS = """
import os, sys, cv2, torch
torch.set_num_threads(3); cv2.setNumThreads(3)
import wsi_screen, wsi_screen.detectors, wsi_screen.detectors.yolo
assert "ultralytics" not in sys.modules, "ultralytics imported at package import"
assert "YOLO_OFFLINE" not in os.environ
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.detectors.yolo import content_window
import numpy as np
from PIL import Image
open_before, save_before = Image.open, torch.save
YoloDetector(sys.argv[1]).predict_boxes(np.full((64, 64, 3), 230, np.uint8))
print(torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS"),
      np.get_printoptions()["linewidth"], "NUMEXPR_MAX_THREADS" in os.environ,
      Image.open is open_before and torch.save is save_before)
"""


def test_import_is_lazy_and_first_import_restores_threads(one_epoch: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_OFFLINE", "OMP_NUM"))}
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(one_epoch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3", "3", "None", "75", "False", "True"]  # monkey-patches undone


def test_adapter_end_to_end_level0_coords(one_epoch: Path) -> None:
    det = create_detector("yolo", weights=str(one_epoch), conf=0.0, device="cpu")
    assert det.name == "yolo"
    assert det.target_mpp == pytest.approx(DISC_MPP)
    params = det.params()
    assert params["conf"] == 0.0
    assert params["weights"].endswith("weights.safetensors")
    assert params["weights_format"] == "safetensors"
    rng = np.random.default_rng(1)
    centres = random_centres(rng, 192, 160, 3, 40)
    pixels = synthetic_field(192, 160, centres, mpp=DISC_MPP, n_rbc=2)
    # a tile at (1000, 2000) of a slide read at half resolution: level-0 = offset + 2 x tile px
    tile = Tile("s", 7, 1000, 2000, 384, 320, (1000, 2000, 1384, 2320), pixels, DISC_MPP, 2.0)
    cells = det.detect(tile)
    for c in cells:  # an untrained model may find nothing; whatever it finds is well formed
        assert tile.owns(c.x, c.y)
        x0, y0, x1, y1 = c.bbox
        assert 1000 <= x0 <= c.x <= x1 <= 1384 + 1
        assert 2000 <= y0 <= c.y <= y1 <= 2320 + 1
        assert (c.detector, c.tile_index, c.cell_id, c.source_id) == ("yolo", 7, -1, "s")
        assert 0.0 <= c.score <= 1.0
    # ownership: the same tile with an empty core owns nothing
    empty = Tile("s", 8, 1000, 2000, 384, 320, (0, 0, 0, 0), pixels, DISC_MPP, 2.0)
    assert det.detect(empty) == []


def test_yolo_centres_follow_the_pixel_centre_convention_of_the_foreground_detector(
    one_epoch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A box over tile pixels 10..19 x 30..39 (edges [10, 20) x [30, 40)) is centred where
    ``Tile.to_level0`` puts the centre of those pixels, at any scale and offset."""
    det = create_detector("yolo", weights=str(one_epoch), device="cpu")
    box = np.array([[10.0, 30.0, 20.0, 40.0]], np.float32)
    monkeypatch.setattr(
        det, "predict_boxes_batch", lambda ims: [(box.copy(), np.array([0.9]), np.array([0])) for _ in ims]
    )
    pixels = np.full((64, 64, 3), 120, np.uint8)  # no padding: content window is the whole tile
    tile = Tile("s", 0, 1000, 2000, 256, 256, (0, 0, 10**6, 10**6), pixels, 0.4, 4.0, (-3.0, -1.0))
    (cell,) = det.detect(tile)
    assert (cell.x, cell.y) == pytest.approx(tile.to_level0(14.5, 34.5))


def test_weights_resolution_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelBundleError, match="not found"):
        resolve_model_dir(tmp_path / "nothing.pt")
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(ModelBundleError, match="weights.safetensors"):
        resolve_model_dir(tmp_path / "empty_model")
    with pytest.raises(ConfigError, match="conf"):
        YoloDetector(tmp_path / "nothing.pt", conf=1.5)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelBundleError, match="bad.pt: refusing to load a pickle"):
        YoloDetector(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelBundleError, match="bad.safetensors"):
        YoloDetector(tmp_path / "bad.safetensors")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "weights.safetensors").write_bytes(b"x")
    (tmp_path / "broken" / "detector.json").write_text("{not json")
    with pytest.raises(ModelBundleError, match="detector.json"):
        resolve_model_dir(tmp_path / "broken")


def test_train_detector_cli_selects_classes(tmp_path: Path) -> None:
    data = write_disc_dataset(tmp_path / "data", n_train=4, n_val=2, rbc_class=True)
    out = tmp_path / "model"
    deterministic = torch.are_deterministic_algorithms_enabled()
    res = CliRunner().invoke(
        main,
        [
            "train-detector",
            str(data),
            "-o",
            str(out),
            "--arch",
            "yolov8n",
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--batch",
            "4",
            "--classes",
            "cell",
            "--mpp",
            str(DISC_MPP),
        ],
    )
    assert res.exit_code == 0, res.output
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    cfg = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    assert cfg["class_names"] == ["cell"]
    assert cfg["mpp"] == DISC_MPP
    assert (out / "weights.safetensors").is_file()
    assert not list(out.glob("*.pt"))  # the model folder holds no pickle
    assert not list((data / "labels").glob("*.cache"))  # the user's data set is not written to
    det = YoloDetector(out)
    assert det.class_names == {0: "cell"}


@pytest.mark.slow
def test_trained_on_easy_fields_finds_the_discs(tmp_path: Path) -> None:
    """A yolov8n trained ~40 epochs on trivially easy fields finds most discs through the pipeline."""
    data = write_disc_dataset(tmp_path / "data", n_train=48, n_val=6, size=(160, 160))
    from wsi_screen.training.detector_convert import prepare_yolo_dataset

    yaml_path = prepare_yolo_dataset(data, tmp_path / "prepared")
    weights = train_yolo(
        yaml_path,
        tmp_path / "model",
        arch="yolov8n",
        epochs=40,
        imgsz=160,
        batch=16,
        extra={"mosaic": 0.0, "close_mosaic": 0},
    )
    det = YoloDetector(_model_folder(weights, tmp_path / "easy", DISC_MPP), conf=0.25)
    rng = np.random.default_rng(7)
    side = CELL_UM / DISC_MPP
    centres = random_centres(rng, 480, 320, 10, 1.5 * side)
    img = synthetic_field(480, 320, centres, mpp=DISC_MPP, n_rbc=6, seed=7)
    tiling = TilingConfig(tile_size_px=160, overlap_um=16.0)
    cells = detect_cells(FieldSource(img, source_id="f", mpp=DISC_MPP), det, tiling, mpp=DISC_MPP)
    hits, multi, extra = match_centres([(c.x, c.y) for c in cells], centres, radius=0.5 * side)
    assert hits >= 0.8 * len(centres)
    assert multi == 0
    assert extra <= 2


def test_shipped_detector_finds_the_cell_in_real_fields() -> None:
    """yolo-wbc, loaded offline, finds the white cell in real TXL-PBC validation fields."""
    val = require_shared_data("txl_pbc", "images", "val")
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} not present (shipped model not built in this checkout)")
    det = create_detector("yolo", weights="yolo-wbc")
    assert det.target_mpp is not None
    found = tried = 0
    for img_path in sorted(val.glob("*.jpg")):
        lab = img_path.parents[2] / "labels" / "val" / f"{img_path.stem}.txt"
        wbc = [line.split() for line in lab.read_text(encoding="utf-8").splitlines() if line.startswith("0 ")]
        if len(wbc) != 1:
            continue
        rgb = cv2.imread(str(img_path))[:, :, ::-1]
        h, w = rgb.shape[:2]
        # TXL-PBC crops share a field of view (see docs/detectors.md): the long side at the
        # model's training scale is its training image size
        field_mpp = (
            det.target_mpp
            * json.loads((MODELS_DIR / "yolo-wbc" / "detector.json").read_text(encoding="utf-8"))["imgsz"]
            / max(w, h)
        )
        src = FieldSource(np.ascontiguousarray(rgb), source_id=img_path.stem, mpp=field_mpp)
        tiling = TilingConfig(tile_size_px=512, overlap_um=5.0)
        cells = detect_cells(src, det, tiling, mpp=field_mpp)
        cx, cy, bw, bh = (float(v) for v in wbc[0][1:5])
        tried += 1
        found += any(abs(c.x - cx * w) < bw * w / 2 and abs(c.y - cy * h) < bh * h / 2 for c in cells)
        if tried == 5:
            break
    assert tried == 5
    assert found >= 4


def test_content_window_trims_padding_only() -> None:
    img = np.full((100, 120, 3), 255, np.uint8)
    img[10:60, 0:90] = 200
    assert content_window(img) == (0, 10, 90, 60)
    img[70, 110] = (255, 255, 254)  # one non-pad pixel keeps its row and column
    assert content_window(img) == (0, 10, 111, 71)
    assert content_window(np.full((8, 8, 3), 255, np.uint8)) == (0, 0, 0, 0)


def test_shipped_detector_counts_synthetic_cells_once_across_seams_and_padding() -> None:
    """yolo-wbc on a 2452 x 2056 field: every disc once, nothing on seams or the padded border."""
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} not present (shipped model not built in this checkout)")
    centres = [(x, y) for x, y in grid_centres(2452, 2056, 290, margin=-40) if x < 2452 and y < 2056]
    img = synthetic_field(2452, 2056, centres, lobed=[i % 4 == 0 for i in range(len(centres))])
    det = create_detector("yolo", weights="yolo-wbc")
    src = FieldSource(img, source_id="f", mpp=0.0862)
    # 1024 px tiles at the model's scale: 3 x 2 tiles, the right and bottom ones padded
    cells = detect_cells(src, det, TilingConfig(tile_size_px=1024), mpp=0.0862)
    hits, multi, extra = match_centres([(c.x, c.y) for c in cells], centres, radius=50)
    assert hits >= 0.95 * len(centres)
    assert (multi, extra) == (0, 0)
    assert len({c.tile_index for c in cells}) >= 4


def test_evaluate_detector_cli_with_yolo_weights(one_epoch: Path, tmp_path: Path) -> None:
    data = write_disc_dataset(tmp_path / "data", n_train=1, n_val=3)
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        main,
        ["evaluate-detector", str(one_epoch), str(data), "-o", str(out), "--mpp", str(DISC_MPP)],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {"precision", "recall", "f1", "map50", "per_class", "centre"} <= set(metrics)
    assert metrics["score_threshold"] == 0.25  # P/R/F1 at the operating confidence
    assert metrics["params"]["conf"] == 0.001  # mAP50 from the low-confidence tail
    assert metrics["counts"]["n_images"] == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"confidence": 0.5}, r"detector\.options: .*confidence.*known yolo options: weights, conf"),
        ({"conf": "high"}, r"detector\.options\.conf must be a finite number"),
        ({"conf": 1.5}, r"detector\.options\.conf must be in \[0, 1\]"),
        ({"iou": 0}, r"detector\.options\.iou must be in \(0, 1\]"),
        ({"imgsz": 0}, r"detector\.options\.imgsz must be a whole number"),
        ({"imgsz": "big"}, r"detector\.options\.imgsz must be a whole number"),
        ({"classes": "WBC"}, r"detector\.options\.classes must be a list of class indices"),
        ({"mpp": -1.0}, r"detector\.options\.mpp must be > 0"),
    ],
)
def test_bad_yolo_options_are_config_errors(options: dict, match: str) -> None:
    from wsi_screen.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        create_detector("yolo", **options)


def test_bad_yolo_option_in_a_config_file_is_a_usage_error_naming_it(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    cfg = tmp_path / "yolo.toml"
    cfg.write_text('[detector]\nname = "yolo"\n[detector.options]\nimgsz = 0\n')
    img = tmp_path / "f.png"
    img.write_bytes(b"")  # never read: the settings are refused first
    res = CliRunner().invoke(
        main, ["run", str(img), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle), "--config", str(cfg)]
    )
    assert res.exit_code == 2 and "detector.options.imgsz" in res.output and str(cfg) in res.output


def test_tiles_predicted_together_give_the_cells_of_one_tile_at_a_time() -> None:
    """detect_batch groups tiles by network size: a batch never rescales one tile to fit another."""
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} not present (shipped model not built in this checkout)")
    centres = grid_centres(2452, 2056, 290)
    img = synthetic_field(2452, 2056, centres, lobed=[i % 4 == 0 for i in range(len(centres))])
    det = create_detector("yolo", weights="yolo-wbc")
    src = FieldSource(img, source_id="f", mpp=0.0862)
    # 1024 px tiles: full ones and smaller padded edge tiles in the same batches
    tiles = [w for _, w, _ in seam_tiles(src, TilingConfig(tile_size_px=1024), mpp=0.0862, target_mpp=0.0862)]
    windows = {tuple(np.subtract(content_window(t.pixels)[2:], content_window(t.pixels)[:2])) for t in tiles}
    assert len(tiles) >= 4 and len(windows) >= 2  # tiles of different sizes share the batches
    one_by_one = [det.detect(t) for t in tiles]
    together = det.detect_batch(tiles)
    assert sum(map(len, one_by_one)) > 10
    for a, b in zip(one_by_one, together, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose([(c.x, c.y) for c in a], [(c.x, c.y) for c in b], atol=0.5)
    # and through the pipeline's tile loop: the same cells with 4 tiles per pass as with one
    det.tiles_per_batch = 1
    single = detect_cells(src, det, TilingConfig(tile_size_px=1024), mpp=0.0862)
    det.tiles_per_batch = 4
    batched = detect_cells(src, det, TilingConfig(tile_size_px=1024), mpp=0.0862)
    assert [(c.cell_id, c.tile_index, c.bbox) for c in batched] == [
        (c.cell_id, c.tile_index, c.bbox) for c in single
    ]
