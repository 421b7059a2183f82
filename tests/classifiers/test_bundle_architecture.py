"""A model bundle names a plain timm model, bounded kwargs and weights that fit: checked before timm runs.

A bundle whose ``architecture`` carries a hub prefix made timm look the name up on the Hugging
Face Hub; ``model_kwargs`` such as ``embed_dim`` made it allocate gigabytes before the weights
were compared. Each is now refused with a one-line ModelBundleError, before timm resolves a name or
any tensor is allocated.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from wsi_screen.classifiers.architecture import safetensors_shapes
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.errors import ModelBundleError


def _bundle(tiny_bundle: Path, tmp_path: Path, **changes: Any) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    "name",
    [
        "hf-hub:evil/model",
        "local-dir:/tmp/x",
        "timm/resnet18",
        "resnet18.a1_in1k",
        "http://x/y",
        "RESNET18",
        "",
    ],
)
def test_prefixed_architecture_refused_without_timm(
    name: str, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import timm

    def no_timm(*args: Any, **kwargs: Any) -> Any:
        msg = "timm.create_model reached"
        raise AssertionError(msg)

    monkeypatch.setattr(timm, "create_model", no_timm)
    with pytest.raises(ModelBundleError, match="plain timm model name") as e:
        ModelBundle.load(_bundle(tiny_bundle, tmp_path, architecture=name))
    assert "\n" not in str(e.value)


def test_unknown_architecture_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = ModelBundle.load(_bundle(tiny_bundle, tmp_path, architecture="no_such_model_xyz"))
    with pytest.raises(ModelBundleError, match="is not a timm model"):
        bundle.create_model()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embed_dim": 8192, "depth": 24}, "not accepted"),
        ({"pretrained_cfg_overlay": {"hf_hub_id": "evil/model"}}, "not accepted"),
        ({"checkpoint_path": "/etc/passwd"}, "not accepted"),
        ({"pretrained": True}, "not accepted"),
        ({"drop_rate": 5.0}, r"drop_rate must be a number in \[0, 1\]"),
        ({"drop_path_rate": True}, "drop_path_rate must be a number"),
        ({"drop_rate": "0.1"}, "drop_rate must be a number"),
    ],
)
def test_model_kwargs_closed_and_bounded(
    kwargs: dict[str, Any], message: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelBundleError, match=message):
        ModelBundle.load(_bundle(tiny_bundle, tmp_path, model_kwargs=kwargs))


def test_drop_rates_accepted(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = ModelBundle.load(_bundle(tiny_bundle, tmp_path, model_kwargs={"drop_rate": 0.2}))
    assert bundle.model_kwargs == {"drop_rate": 0.2}
    assert not bundle.create_model().training


def test_large_network_refused_before_allocation(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another architecture than the weights': refused from the meta build alone, nothing allocated.

    (resnet18 stands for the ~19 G parameters of the issue's bundle, which the old code tried to allocate.)
    """
    import timm

    real = timm.create_model
    devices: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        model = real(*args, **kwargs)
        devices.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(timm, "create_model", spy)
    bundle = ModelBundle.load(_bundle(tiny_bundle, tmp_path, architecture="resnet18"))
    with pytest.raises(ModelBundleError, match=r"weights do not fit .* values in the file") as e:
        bundle.create_model()
    assert devices == ["meta"]  # never built for real
    assert "\n" not in str(e.value) and "model.safetensors" in str(e.value)


def _header_file(path: Path, header: dict[str, Any], data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_header_claiming_more_than_the_file(tmp_path: Path) -> None:
    """Shapes come from the header, so a header describing data the file lacks is refused."""
    big = {"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40_000_000_000]}}
    with pytest.raises(ModelBundleError, match="bad dtype, shape or offsets"):
        safetensors_shapes(_header_file(tmp_path / "a.safetensors", big, b"\0" * 64))
    ok = {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}, "__metadata__": {"a": "b"}}
    assert safetensors_shapes(_header_file(tmp_path / "b.safetensors", ok, b"\0" * 64)) == {"w": (4, 4)}
    (tmp_path / "c.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ModelBundleError, match="not a readable safetensors file"):
        safetensors_shapes(tmp_path / "c.safetensors")
    deep = tmp_path / "d.safetensors"
    raw = b"[" * 5000 + b"]" * 5000
    deep.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(ModelBundleError, match="nested more than"):
        safetensors_shapes(deep)


def test_hub_architecture_run_exits_2(tiny_bundle: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    field = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"
    bundle = _bundle(tiny_bundle, tmp_path, architecture="hf-hub:evil/model")
    res = CliRunner().invoke(
        main, ["run", str(field), "-o", str(tmp_path / "o"), "--model", str(bundle), "--device", "cpu"]
    )
    assert res.exit_code == 2, res.output
    assert "plain timm model name" in res.output and "Traceback" not in res.output
