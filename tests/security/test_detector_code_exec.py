"""Nothing a detector folder or an architecture YAML says runs code, through every CLI path.

ultralytics resolves a model name itself: a name with ``-world`` or ``yoloe`` that leads to a YAML
file switches the model class and ``eval``s the file's ``activation`` line, and a ``://`` name is
a Triton server. A detector folder's ``name`` is only a label and its ``architecture`` a name of a
closed list built from ultralytics' packaged YAML, so none of this is reachable: each path is run
through the real CLI and the payload file must not exist afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from click.testing import Result

from wsi_screen.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "examples" / "data" / "synthetic_field.jpg"
YOLO = ROOT / "wsi_screen" / "models" / "yolo-wbc"


def _payload_yaml(path: Path, payload: Path) -> Path:
    """An architecture YAML whose ``activation`` line creates ``payload`` when ``eval``-ed."""
    act = f"__import__('pathlib').Path({str(payload)!r}).write_text('code ran')"
    path.write_text(
        f'nc: 1\nactivation: "{act}"\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\nhead:\n  - [[0], 1, Detect, [nc]]\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` beside ``evil-world.yaml`` and ``yoloe-evil.yaml``; return the payload path."""
    payload = tmp_path / "PAYLOAD"
    for name in ("evil-world.yaml", "yoloe-evil.yaml"):
        _payload_yaml(tmp_path / name, payload)
    monkeypatch.chdir(tmp_path)
    return payload


def _folder(tmp_path: Path, **cfg: object) -> Path:
    """The shipped detector's weights with a detector.json saying ``cfg``."""
    folder = tmp_path / "det"
    folder.mkdir(exist_ok=True)
    shutil.copy(YOLO / "weights.safetensors", folder / "weights.safetensors")
    (folder / "detector.json").write_text(json.dumps({"mpp": 0.105, **cfg}), encoding="utf-8")
    return folder


def _data(tmp_path: Path) -> Path:
    """A one-image YOLO data set (val split)."""
    root = tmp_path / "data"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "val" / "a.png"), np.full((96, 96, 3), 230, np.uint8))
    (root / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return root


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, ["--log-level", "warning", *args])


def _paths(tmp_path: Path, folder: Path, tiny_bundle: Path) -> dict[str, list[str]]:
    """argv of each way a detector folder reaches the product (on a 320 px crop of the example field)."""
    field = tmp_path / "inputs" / "field.png"
    field.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(field), cv2.imread(str(FIELD))[:320, :320])
    cfg = tmp_path / "screen.toml"
    cfg.write_text(f'[detector]\nname = "yolo"\n[detector.options]\nweights = {json.dumps(str(folder))}\n')
    model = ["--model", str(tiny_bundle)]
    return {
        "run": ["run", str(field), "-o", str(tmp_path / "o1"), "--detector", "yolo", "--detector-weights", str(folder), *model],
        "run --config": ["run", str(field), "-o", str(tmp_path / "o2"), "--config", str(cfg), *model],
        "batch --config": ["batch", str(field.parent), "-o", str(tmp_path / "o3"), "--config", str(cfg), "--device", "cpu", *model],
        "evaluate-detector": ["evaluate-detector", str(folder), str(_data(tmp_path)), "-o", str(tmp_path / "o4"), "--mpp", "0.105"],
        "train-detector --init": ["train-detector", str(_data(tmp_path / "t")), "-o", str(tmp_path / "o5"), "--init", str(folder), "--epochs", "1"],
    }  # fmt: skip


REFUSED = {
    "name: a path to a -world YAML": {"name": "{tmp}/evil-world"},
    "name: a path to a yoloe YAML": {"name": "{tmp}/yoloe-evil"},
    "name: a Triton URL": {"name": "http://127.0.0.1:9/evil"},
    "architecture: a -world name": {"architecture": "evil-world"},
    "architecture: ultralytics' own world model": {"architecture": "yolov8s-worldv2"},
    "architecture: a path": {"architecture": "{tmp}/yoloe-evil"},
    "architecture: a gRPC URL": {"architecture": "grpc://127.0.0.1:9/evil"},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize(
    "path", ["run", "run --config", "batch --config", "evaluate-detector", "train-detector --init"]
)
def test_detector_json_naming_a_yaml_or_url_is_refused(
    case: str, path: str, trap: Path, tmp_path: Path, tiny_bundle: Path
) -> None:
    cfg = {k: v.replace("{tmp}", str(tmp_path)) for k, v in REFUSED[case].items()}
    folder = _folder(tmp_path, **cfg)
    res = _invoke(_paths(tmp_path, folder, tiny_bundle)[path])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "detector.json" in errors[0], res.output
    assert "Traceback" not in res.output
    assert not trap.exists()


@pytest.mark.parametrize(
    ("label", "path"),
    [
        ("evil-world", "run"),
        ("yoloe-evil", "run"),
        ("evil-world", "run --config"),
        ("evil-world", "batch --config"),
        ("evil-world", "evaluate-detector"),
    ],
)
def test_a_name_is_only_a_label(label: str, path: str, trap: Path, tmp_path: Path, tiny_bundle: Path) -> None:
    """A name that ultralytics would resolve to the YAML in the working folder labels the shipped network."""
    folder = _folder(tmp_path, name=label)
    res = _invoke(_paths(tmp_path, folder, tiny_bundle)[path])
    assert not trap.exists()
    assert res.exit_code == 0, res.output
    if path == "evaluate-detector":
        params = json.loads((tmp_path / "o4" / "metrics.json").read_text())["params"]
    else:
        out = tmp_path / ("o3" if path.startswith("batch") else "o1" if path == "run" else "o2")
        report = next(out.rglob("report.json"))
        params = json.loads(report.read_text())["detector"]["params"]
    assert (params["model"], params["architecture"]) == (label, "yolo11n")
    assert params["weights"] == str(folder / "weights.safetensors")


ARCH_YAMLS = {
    "activation that runs code": "evil-world.yaml",
    "yoloe name, activation that runs code": "yoloe-evil.yaml",
}


@pytest.mark.parametrize("case", sorted(ARCH_YAMLS))
def test_train_detector_arch_yaml_is_checked_before_ultralytics_reads_it(
    case: str, trap: Path, tmp_path: Path
) -> None:
    res = _invoke(
        ["train-detector", str(_data(tmp_path)), "-o", str(tmp_path / "o"), "--arch", ARCH_YAMLS[case]]
    )
    assert res.exit_code == 2, res.output
    assert "activation must be a plain torch.nn activation" in res.output
    assert not trap.exists()
    assert not (tmp_path / "o" / "weights.safetensors").exists()


@pytest.mark.parametrize(
    ("arch", "needle"),
    [
        ("yolov8s-worldv2", "not one wsi-screen builds"),
        ("yoloe-11s", "not one wsi-screen builds"),
        ("http://127.0.0.1:9/m", "not one wsi-screen builds"),
        ("grpc://127.0.0.1:9/m.yaml", "cannot read"),
        ("yolo11n.pt", "refusing to load a pickle checkpoint"),
    ],
)
def test_train_detector_arch_names_come_from_the_closed_list(
    arch: str, needle: str, trap: Path, tmp_path: Path
) -> None:
    res = _invoke(["train-detector", str(_data(tmp_path)), "-o", str(tmp_path / "o"), "--arch", arch])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not trap.exists()


def test_train_detector_name_is_a_label(trap: Path, tmp_path: Path) -> None:
    res = _invoke(
        ["train-detector", str(_data(tmp_path)), "-o", str(tmp_path / "o"), "--name", "http://x/evil-world"]
    )
    assert res.exit_code == 2, res.output
    assert "--name: name must be" in res.output
    assert not trap.exists()
