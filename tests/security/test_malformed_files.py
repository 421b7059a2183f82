"""Every malformed model, detector or config file is a one-line error with exit 2, no traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsi_screen.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "examples" / "data" / "synthetic_field.jpg"
YOLO = ROOT / "wsi_screen" / "models" / "yolo-wbc"


def _edit(key: str, value: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        meta[key] = value
        (folder / "model.json").write_text(json.dumps(meta))

    return edit


def _weights(data: bytes | None) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        w = folder / "model.safetensors"
        w.write_bytes(data if data is not None else w.read_bytes()[:3000])

    return edit


BUNDLES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage weights": (_weights(b"\x07" * 800), "not a readable safetensors file"),
    "truncated weights": (_weights(None), "not a readable safetensors file"),
    "bad model_kwargs": (_edit("model_kwargs", {"bogus": 1}), "model_kwargs 'bogus' not accepted"),
    "model_kwargs not an object": (_edit("model_kwargs", [1]), "model_kwargs must be an object"),
    "class_names a string": (_edit("class_names", "ABCDEFGH"), "class_names must be a list"),
    "huge input_size": (_edit("input_size", 100000), "input_size must be 8-1024"),
    "huge patch_size_px": (_edit("patch_size_px", 100000), "patch_size_px must be 8-2048"),
    "bad UTF-8": (lambda f: (f / "model.json").write_bytes(b'{"name": "\xff\xfe"}'), "not UTF-8"),
    "deep JSON": (lambda f: (f / "model.json").write_text("[" * 50000 + "]" * 50000), "nested more than"),
}


def _invoke(args: list[str]) -> Any:
    res = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


@pytest.mark.parametrize("case", sorted(BUNDLES))
def test_malformed_bundle(case: str, tiny_bundle: Path, tmp_path: Path) -> None:
    edit, message = BUNDLES[case]
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    edit(bundle)
    res = _invoke(["run", str(FIELD), "-o", str(tmp_path / "out"), "--model", str(bundle)])
    assert message in res.output and str(bundle) in res.output


CONFIGS = {
    "deep TOML": ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    "absurd threads": ("[classify]\nthreads = 100000\n", "classify.threads must be 0-1024"),
    "absurd batch size": ("[classify]\nbatch_size = 10000000\n", "classify.batch_size must be 0-65536"),
    "not TOML": ("[classify\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_malformed_config(case: str, tiny_bundle: Path, tmp_path: Path) -> None:
    text, message = CONFIGS[case]
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    res = _invoke(
        ["run", str(FIELD), "-o", str(tmp_path / "o"), "--config", str(cfg), "--model", str(tiny_bundle)]
    )
    assert message in res.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"mpp": "abc"}', "mpp must be a number"),
        ('{"cell_classes": 5}', "cell_classes must be a list"),
        ("{not json", "not a readable detector.json"),
    ],
)
def test_malformed_detector_json(content: str, message: str, tiny_bundle: Path, tmp_path: Path) -> None:
    det = tmp_path / "det"
    det.mkdir()
    shutil.copy(YOLO / "weights.safetensors", det / "weights.safetensors")
    (det / "detector.json").write_text(content)
    args = ["run", str(FIELD), "-o", str(tmp_path / "o"), "--detector-weights", str(det)]
    res = _invoke([*args, "--model", str(tiny_bundle)])
    assert message in res.output
