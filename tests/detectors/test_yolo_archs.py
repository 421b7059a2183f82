"""The network that runs is the one the folder names, from a closed list, with its tensors loaded exactly."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save_file

from wsi_screen.detectors.yolo import MODELS_DIR
from wsi_screen.detectors.yolo import YoloDetector
from wsi_screen.detectors.yolo_archs import ARCHITECTURES
from wsi_screen.detectors.yolo_archs import packaged_architecture
from wsi_screen.detectors.yolo_archs import user_architecture
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.yolo_train import export_weights

SHIPPED = MODELS_DIR / "yolo-wbc"


def _copy(tmp_path: Path, cfg: dict[str, object] | None = None) -> Path:
    folder = tmp_path / "det"
    folder.mkdir()
    shutil.copy(SHIPPED / "weights.safetensors", folder / "weights.safetensors")
    if cfg is not None:
        (folder / "detector.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def _rewrite(folder: Path, edit: Callable[[dict[str, torch.Tensor], dict[str, str]], None]) -> Path:
    """Rewrite the folder's weights after ``edit(tensors, header)``."""
    path = folder / "weights.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    state = load_file(str(path))
    edit(state, meta)
    save_file(state, str(path), metadata=meta)
    return folder


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((160, 160, 3), 225, np.uint8)
    for cx, cy in ((50, 50), (110, 100)):
        yy, xx = np.ogrid[:160, :160]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 30**2] = (120, 60, 150)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def test_a_world_model_name_does_not_swap_the_network(tmp_path: Path) -> None:
    """``"name": "yolov8s-worldv2"`` once replaced the checked network with an untrained one."""
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    det = YoloDetector(_copy(tmp_path, {"name": "yolov8s-worldv2", "mpp": 0.105}), conf=0.05)
    assert type(det._model.model) is tasks.DetectionModel
    params = det.params()
    assert (params["model"], params["architecture"]) == ("yolov8s-worldv2", "yolo11n")
    shipped = YoloDetector("yolo-wbc", conf=0.05)
    got, want = det.predict_boxes(_image()), shipped.predict_boxes(_image())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"architecture": "yolov8s-worldv2"}, "not one wsi-screen builds"),
        ({"architecture": "yoloe-11s"}, "not one wsi-screen builds"),
        ({"architecture": "rtdetr-l"}, "not one wsi-screen builds"),
        ({"architecture": "http://127.0.0.1:9/m"}, "not one wsi-screen builds"),
        ({"architecture": ["yolo11n"]}, "architecture a list is not one"),
        ({"architecture": "yolo11s"}, "records 'yolo11n'"),
        ({"name": "grpc://127.0.0.1:9/m"}, "name must be 1-100 printable characters"),
        ({"name": "a\u202eb"}, "name must be 1-100 printable characters"),
        ({"name": "x" * 101}, "name must be 1-100 printable characters"),
    ],
)
def test_detector_json_architecture_and_name_are_checked(
    cfg: dict[str, object], needle: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelBundleError, match="detector.json") as e:
        YoloDetector(_copy(tmp_path, cfg))
    assert needle in str(e.value)


def _drop(key: str) -> Callable[[dict[str, torch.Tensor], dict[str, str]], None]:
    def edit(state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        del state[key]

    return edit


def _add(state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    state["model.99.extra"] = torch.zeros(3)


def _reshape(state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    state["model.0.conv.weight"] = torch.zeros(8, 3, 3, 3)


def _header(
    change: Callable[[dict[str, object]], None],
) -> Callable[[dict[str, torch.Tensor], dict[str, str]], None]:
    def edit(state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        arch = json.loads(meta["architecture"])
        change(arch)
        meta["architecture"] = json.dumps(arch)

    return edit


def _bilinear(arch: dict[str, object]) -> None:
    for row in arch["head"]:  # type: ignore[attr-defined]
        if row[2] == "nn.Upsample":
            row[3][2] = "bilinear"


WEIGHTS = {
    "a tensor missing": (_drop("model.0.conv.weight"), "tensors do not fit"),
    "an extra tensor": (_add, "tensors do not fit"),
    "a shape differs": (_reshape, "tensors do not fit"),
    "header: another upsampling (same tensors)": (_header(_bilinear), "describes a network other than"),
    "header: a world yaml_file": (_header(lambda a: a.update(yaml_file="yolov8s-worldv2.yaml")), "not one"),
    "header: a path as yaml_file": (
        _header(lambda a: a.update(yaml_file="/tmp/x/evil-world.yaml")),
        "not one",
    ),
    "header: yolo11s scale": (
        _header(lambda a: a.update(scale="s", yaml_file="yolo11s.yaml")),
        "tensors do not fit",
    ),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS))
def test_weights_must_load_exactly_into_the_named_network(case: str, tmp_path: Path) -> None:
    edit, needle = WEIGHTS[case]
    folder = _rewrite(_copy(tmp_path), edit)
    with pytest.raises(ModelBundleError, match="weights.safetensors") as e:
        YoloDetector(folder)
    assert needle in str(e.value)


def test_every_listed_architecture_is_packaged_and_builds() -> None:
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    for name in ARCHITECTURES:
        arch = packaged_architecture(name, 2)
        assert arch["yaml_file"] == f"{name}.yaml"
        with torch.device("meta"):
            layers, _ = tasks.parse_model(arch, ch=3, verbose=False)
        assert sum(p.numel() for p in layers.parameters()) > 1e6, name


def _packaged_copy(tmp_path: Path, name: str, edit: Callable[[str], str] = lambda t: t) -> Path:
    import importlib.util

    root = Path(next(iter(importlib.util.find_spec("ultralytics").submodule_search_locations)))  # type: ignore[union-attr]
    text = (root / "cfg" / "models" / "v8" / "yolov8.yaml").read_text(encoding="utf-8")
    path = tmp_path / name
    path.write_text(edit(text), encoding="utf-8")
    return path


def test_a_user_yaml_describing_a_listed_network_is_that_network(tmp_path: Path) -> None:
    assert (
        user_architecture(_packaged_copy(tmp_path, "mine-s.yaml", lambda t: t + "\nscale: s\n")) == "yolov8s"
    )
    assert user_architecture(_packaged_copy(tmp_path, "yolov8m.yaml")) == "yolov8m"  # scale from the name
    with_act = _packaged_copy(tmp_path, "act.yaml", lambda t: t + "\nactivation: nn.SiLU()\nscale: n\n")
    assert user_architecture(with_act) == "yolov8n"


USER_YAMLS = {
    "another network": (lambda t: t.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, SPPF, [1024, 3]]"), "not one of the networks"),
    "an eval activation": (lambda t: t + "\nactivation: __import__('os').getcwd()\n", "activation must be a plain"),
    "a ReLU with arguments that run code": (lambda t: t + "\nactivation: nn.ReLU(print(1))\n", "activation must be a plain"),
    "an unknown module": (lambda t: t.replace("SPPF", "TorchVision"), "is not an allowed detection layer"),
    "a string argument": (lambda t: t.replace("[1024, 5]", "[1024, __import__]"), "is not allowed"),
    "an anchor": (lambda t: t.replace("backbone:", "backbone: &b"), "anchors and aliases"),
    "a python tag": (lambda t: t + "\nx: !!python/object/apply:os.getcwd []\n", "not a plain YAML"),
    "deep nesting": (lambda t: t + "\nx: " + "[" * 500 + "]" * 500 + "\n", "nested more than"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(USER_YAMLS))
def test_a_user_yaml_is_refused(case: str, tmp_path: Path) -> None:
    edit, needle = USER_YAMLS[case]
    with pytest.raises(ModelBundleError, match=needle):
        user_architecture(_packaged_copy(tmp_path, "mine.yaml", edit))


def test_a_large_user_yaml_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (70 << 10))
    with pytest.raises(ModelBundleError, match="bytes, more than"):
        user_architecture(big)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('code ran')",))


def test_export_weights_never_fully_unpickles(tmp_path: Path) -> None:
    """It once called ultralytics' strip_optimizer, a full unpickle of the checkpoint."""
    marker = tmp_path / "PAYLOAD"
    evil = tmp_path / "last.pt"
    with evil.open("wb") as f:
        pickle.dump({"model": _Evil(marker), "ema": None}, f, protocol=2)
    with pytest.raises(ModelBundleError, match="last.pt"):
        export_weights(evil, tmp_path / "out" / "weights.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "out" / "weights.safetensors").exists()
    with pytest.raises(ModelBundleError, match="not as a pickle"):
        export_weights(evil, tmp_path / "out" / "weights.pt")
