"""YOLO fine-tuning from safetensors weights (``--init``) and the model folder's operating confidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from test_yolo_synthetic import DISC_MPP
from test_yolo_synthetic import write_disc_dataset

from wsi_screen.cli import main
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.errors import ModelBundleError

_TRAIN = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--mpp", str(DISC_MPP), "--workers", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_disc_dataset(tmp_path_factory.mktemp("discs") / "data", n_train=4, n_val=3)


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolov8n model folder trained one epoch from random weights through the CLI."""
    out = tmp_path_factory.mktemp("scratch") / "model"
    res = CliRunner().invoke(
        main, ["train-detector", str(data), "-o", str(out), "--arch", "yolov8n", *_TRAIN]
    )
    assert res.exit_code == 0, res.output
    return out


def _conv_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Convolution kernels only: batch-norm running statistics move with any training step."""
    state = load_file(str(folder / "weights.safetensors"))
    return {
        k: v
        for k, v in state.items()
        if k.endswith(".conv.weight") or (k.endswith(".weight") and v.ndim == 4)
    }


def test_init_starts_from_the_given_weights(data: Path, trained: Path, tmp_path: Path) -> None:
    """With a vanishing learning rate the fine-tuned kernels are the init's; from scratch they are not."""
    out = tmp_path / "tuned"
    res = CliRunner().invoke(
        main, ["train-detector", str(data), "-o", str(out), "--init", str(trained), "--lr0", "1e-12", *_TRAIN]
    )
    assert res.exit_code == 0, res.output
    before, after = _conv_weights(trained), _conv_weights(out)
    assert before.keys() == after.keys() and len(before) > 50
    for key, value in before.items():
        torch.testing.assert_close(after[key].float(), value.float(), atol=1e-5, rtol=1e-4, msg=key)
    cfg = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    assert cfg["architecture"] == "yolov8n"  # the init's, not the yolo11n default
    assert cfg["training"]["init"] == str(trained)
    assert cfg["training"]["lr0"] == 1e-12

    other = tmp_path / "other"
    res = CliRunner().invoke(
        main, ["train-detector", str(data), "-o", str(other), "--arch", "yolov8n", "--seed", "1", *_TRAIN]
    )
    assert res.exit_code == 0, res.output
    fresh = _conv_weights(other)
    differs = [k for k in before if not torch.allclose(fresh[k].float(), before[k].float(), atol=1e-3)]
    assert len(differs) > 0.9 * len(before)


def test_init_refuses_arch_and_unusable_weights(data: Path, trained: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        ["train-detector", str(data), "-o", str(tmp_path / "a"), "--init", str(trained), "--arch", "yolov8n"],
    )
    assert res.exit_code == 2
    assert "--arch and --init" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weights.safetensors").write_bytes(b"not safetensors")
    res = CliRunner().invoke(
        main, ["train-detector", str(data), "-o", str(tmp_path / "b"), "--init", str(bad), *_TRAIN]
    )
    assert res.exit_code == 2
    assert "not a readable safetensors file" in res.output
    assert not (tmp_path / "b" / "weights.safetensors").exists()


def _with_conf(src: Path, dst: Path, conf: object) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("run"))
    cfg = json.loads((dst / "detector.json").read_text(encoding="utf-8"))
    cfg["conf"] = conf
    (dst / "detector.json").write_text(json.dumps(cfg), encoding="utf-8")
    return dst


def test_model_folder_conf_is_the_default_operating_point(trained: Path, tmp_path: Path) -> None:
    folder = _with_conf(trained, tmp_path / "m", 0.4)
    assert YoloDetector(folder).conf == pytest.approx(0.4)
    assert YoloDetector(folder, conf=0.1).conf == pytest.approx(0.1)  # an explicit one wins
    assert YoloDetector(trained).conf == pytest.approx(0.25)  # none recorded: DEFAULT_CONF
    for i, bad in enumerate((1.5, -0.1, "high", True)):
        with pytest.raises(ModelBundleError, match="conf must be a confidence in"):
            YoloDetector(_with_conf(trained, tmp_path / f"bad{i}", bad))


def test_fit_conf_writes_the_best_f1_threshold(data: Path, trained: Path, tmp_path: Path) -> None:
    folder = _with_conf(trained, tmp_path / "m", None)
    res = CliRunner().invoke(
        main,
        [
            "evaluate-detector",
            str(folder),
            str(data),
            "-o",
            str(tmp_path / "e1"),
            "--mpp",
            str(DISC_MPP),
            "--fit-conf",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "e1" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["operating_conf"] == 0.25  # fitted after this evaluation, at the default
    best = metrics["best_f1"]
    assert best["f1"] == max(r["f1"] for r in metrics["threshold_sweep"])
    cfg = json.loads((folder / "detector.json").read_text(encoding="utf-8"))
    assert cfg["conf"] == best["threshold"]
    fit = cfg["conf_fit"]
    assert (fit["split"], fit["n_images"], fit["f1"]) == ("val", 3, best["f1"])
    assert fit["n_gt"] == metrics["counts"]["n_gt"] > 0

    # the next evaluation (and any run) operates at the fitted confidence
    res = CliRunner().invoke(
        main,
        ["evaluate-detector", str(folder), str(data), "-o", str(tmp_path / "e2"), "--mpp", str(DISC_MPP)],
    )
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "e2" / "metrics.json").read_text(encoding="utf-8"))
    assert again["operating_conf"] == again["score_threshold"] == best["threshold"]
    assert again["f1"] == pytest.approx(best["f1"])

    res = CliRunner().invoke(
        main,
        [
            "evaluate-detector",
            "foreground",
            str(data),
            "-o",
            str(tmp_path / "e3"),
            "--mpp",
            str(DISC_MPP),
            "--fit-conf",
        ],
    )
    assert res.exit_code == 2
    assert "--fit-conf needs a YOLO model folder" in res.output
