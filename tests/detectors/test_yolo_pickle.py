"""A detector weights file can never run code: pickle checkpoints are always refused."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.detectors.yolo import MODELS_DIR
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.detectors.yolo import resolve_model_dir
from wsi_screen.errors import ModelBundleError


class _Evil:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('code ran')",))


def _evil_pt(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    with evil.open("wb") as f:
        pickle.dump({"model": _Evil(marker)}, f, protocol=2)
    return evil, marker


def test_pickle_file_and_folder_refused_by_default(tmp_path: Path) -> None:
    evil, marker = _evil_pt(tmp_path)
    with pytest.raises(ModelBundleError, match="refusing to load a pickle checkpoint") as e:
        YoloDetector(evil)
    assert "convert-weights" in str(e.value)
    folder = tmp_path / "folder"
    folder.mkdir()
    evil.replace(folder / "weights.pt")
    with pytest.raises(ModelBundleError, match="refusing"):
        resolve_model_dir(folder)
    assert not marker.exists()


def _field(tmp_path: Path) -> Path:
    import cv2

    path = tmp_path / "field.png"
    cv2.imwrite(str(path), np.full((128, 128, 3), 230, np.uint8))
    return path


def test_run_with_malicious_weights_or_config_runs_no_code(tmp_path: Path) -> None:
    evil, marker = _evil_pt(tmp_path)
    field = _field(tmp_path)
    res = CliRunner().invoke(
        main, ["run", str(field), "--detector-weights", str(evil), "-o", str(tmp_path / "o1")]
    )
    assert res.exit_code == 2, res.output
    assert "refusing to load a pickle checkpoint" in res.output
    cfg = tmp_path / "screen.toml"
    cfg.write_text(f'[detector]\nname = "yolo"\n[detector.options]\nweights = {json.dumps(str(evil))}\n')
    res = CliRunner().invoke(main, ["run", str(field), "--config", str(cfg), "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2, res.output
    res = CliRunner().invoke(
        main, ["evaluate-detector", str(evil), str(tmp_path), "-o", str(tmp_path / "o3")]
    )
    assert res.exit_code == 2, res.output
    assert not marker.exists()


def test_shipped_detector_loads_without_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert not list((MODELS_DIR / "yolo-wbc").glob("*.pt"))

    def no_unpickling(*a: object, **k: object) -> None:
        msg = "the shipped detector must not be unpickled"
        raise AssertionError(msg)

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    det = YoloDetector("yolo-wbc")
    assert det.params()["weights_format"] == "safetensors"
    assert det.class_names == {0: "WBC"}
    boxes, scores, _ = det.predict_boxes(np.full((96, 96, 3), 230, np.uint8))
    assert boxes.shape[1] == 4 and len(scores) == len(boxes)


def test_convert_weights_refuses_foreign_code_without_trust(tmp_path: Path) -> None:
    evil, marker = _evil_pt(tmp_path)
    res = CliRunner().invoke(main, ["convert-weights", str(evil), "-o", str(tmp_path / "conv")])
    assert res.exit_code == 2, res.output
    assert not marker.exists()
    assert not (tmp_path / "conv" / "weights.safetensors").exists()


def test_no_unrestricted_unpickling_option(tmp_path: Path) -> None:
    """There is no way to ask for a full unpickle: not on the CLI, not in the configuration."""
    evil, marker = _evil_pt(tmp_path)
    for cmd in (
        ["convert-weights", str(evil), "-o", str(tmp_path / "conv"), "--trust-pickle"],
        ["evaluate-detector", str(evil), str(tmp_path), "-o", str(tmp_path / "o"), "--trust-pickle"],
    ):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 2, res.output
        assert "No such option" in res.output
    cfg = tmp_path / "screen.toml"
    cfg.write_text(
        f'[detector]\nname = "yolo"\n[detector.options]\nweights = {json.dumps(str(evil))}\n'
        "trust_pickle = true\n"
    )
    res = CliRunner().invoke(
        main, ["run", str(_field(tmp_path)), "--config", str(cfg), "-o", str(tmp_path / "o2")]
    )
    assert res.exit_code == 2, res.output
    assert "trust_pickle" in res.output
    assert not marker.exists()
