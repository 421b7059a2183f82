"""A run on another back-end (ONNX Runtime, OpenVINO) writes the reports a torch run writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from _synthetic import grid_centres
from _synthetic import synthetic_field

from wsi_screen.config import ScreenConfig
from wsi_screen.runner import build_screener
from wsi_screen.runner import screen_to_folder

NEEDS = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino",)}


@pytest.mark.parametrize("backend", sorted(NEEDS))
def test_a_run_on_another_backend_reports_as_on_torch(
    backend: str, tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in NEEDS[backend]:
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[{backend}]')")
    monkeypatch.setenv("WSI_SCREEN_CACHE", str(tmp_path / "cache"))
    img = synthetic_field(800, 600, grid_centres(800, 600, 230), seed=1)
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), img[:, :, ::-1])
    reports = {}
    for name in ("torch", backend):
        cfg = ScreenConfig().replace("classify", reduced_precision=False)
        scr, info = build_screener(model=str(tiny_bundle), mpp=0.0862, config=cfg, backend=name)
        (out,) = screen_to_folder(scr, info, [path], tmp_path / name)
        reports[name] = json.loads((out.out_dir / "report.json").read_text())
    assert reports[backend]["config"]["classify"]["backend"] == backend
    assert reports[backend]["cells_detected"] == reports["torch"]["cells_detected"] > 0
    assert reports[backend]["differential"] == reports["torch"]["differential"]
