"""The allow-list an ultralytics architecture dict must pass before anything builds it.

ultralytics builds layers by looking their names up in a module namespace, turns string arguments
into values and ``eval``s an ``activation`` key. :func:`check_architecture` is run on every
architecture dict wsi-screen meets (a weights header, a user's ``--arch`` YAML, ultralytics'
packaged YAML) before any of it reaches ultralytics: known detection layers only, plain
``torch.nn`` activations, bounded sizes and no string ultralytics would evaluate or look up.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from wsi_screen.errors import ModelBundleError

_MAX_LAYERS = 512
_MAX_REPEATS = 64
_MAX_ARG = 1 << 16
_MAX_CLASSES = 10_000

_LAYERS = frozenset(
    {
        "Conv", "Concat", "C3k2", "C2f", "C3", "C2", "C1", "C3x", "C3TR", "C3Ghost", "RepC3",
        "RepNCSPELAN4", "ELAN1", "SPPF", "SPP", "SPPELAN", "ADown", "AConv", "A2C2f", "GhostConv",
        "GhostBottleneck", "Bottleneck", "BottleneckCSP", "C2fCIB", "SCDown", "C2PSA", "C2fPSA",
        "PSA", "DWConv", "Focus", "CBLinear", "CBFuse", "HGStem", "HGBlock", "ResNetLayer",
        "nn.Upsample", "nn.MaxPool2d", "nn.Identity", "nn.ConvTranspose2d", "nn.ZeroPad2d",
        "Detect", "v10Detect",
    }
)  # fmt: skip
"""Layer names an architecture may use: ultralytics' detection layers (no TorchVision, no ops)."""
_HEADS = frozenset({"Detect", "v10Detect"})
_STRING_ARGS = frozenset({"nc", "None", "True", "False", "nearest", "bilinear", "bicubic"})
_KEYS = frozenset(
    {
        "nc", "scales", "scale", "backbone", "head", "channels", "yaml_file", "depth_multiple",
        "width_multiple", "reg_max", "end2end", "activation", "inplace",
    }
)  # fmt: skip
_ACTIVATION = re.compile(
    r"(torch\.)?nn\.(SiLU|ReLU|ReLU6|LeakyReLU|GELU|Hardswish|Mish|ELU|Tanh|Sigmoid)\((\d+(\.\d+)?)?\)"
)


def _bad(where: Path, what: str) -> ModelBundleError:
    return ModelBundleError(f"{where}: architecture refused ({what})")


def _check_arg(value: object, where: Path, depth: int = 0) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not (math.isfinite(value) and abs(value) <= _MAX_ARG):
            raise _bad(where, f"layer argument {value!r} out of range")
        return
    if isinstance(value, str):
        if value not in _STRING_ARGS:
            raise _bad(where, f"layer argument {value[:40]!r} is not allowed")
        return
    if isinstance(value, list) and depth == 0 and len(value) <= 16:
        for v in value:
            _check_arg(v, where, depth + 1)
        return
    raise _bad(where, f"layer argument of type {type(value).__name__} is not allowed")


def _check_from(f: object, i: int, where: Path) -> None:
    refs = f if isinstance(f, list) else [f]
    if not refs or len(refs) > 16:
        raise _bad(where, f"layer {i} takes input from {len(refs)} layers")
    for r in refs:
        if isinstance(r, bool) or not isinstance(r, int) or not (-i <= r < max(i, 1)) and r != -1:
            raise _bad(where, f"layer {i} takes input from layer {r!r}")


def _check_scales(arch: dict[str, Any], where: Path) -> None:
    scales = arch.get("scales")
    if scales is None:
        return
    if not isinstance(scales, dict) or not 0 < len(scales) <= 16:
        raise _bad(where, "scales must be a mapping of scale name to [depth, width, max_channels]")
    for name, value in scales.items():
        ok = isinstance(value, list) and len(value) == 3
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not ok or not (0 < value[0] <= 8 and 0 < value[1] <= 8 and 1 <= value[2] <= _MAX_ARG):
            raise _bad(where, f"scale {str(name)[:20]!r} must be [depth, width, max_channels] in range")
    scale = arch.get("scale", "")
    if scale not in ("", None) and scale not in scales:
        raise _bad(where, f"scale {str(scale)[:20]!r} is not one of {sorted(scales)}")


def check_architecture(arch: object, where: Path) -> dict[str, Any]:
    """Return ``arch`` if it is a detection architecture built only from allowed layers and values.

    Raises:
        ModelBundleError: an unknown key or layer, an argument ultralytics would evaluate or look up,
            an out-of-range size, or no detection head.
    """
    if not isinstance(arch, dict):
        raise _bad(where, "the architecture is not a mapping")
    unknown = sorted(str(k)[:40] for k in arch if k not in _KEYS)
    if unknown:
        raise _bad(where, f"unknown architecture key(s) {', '.join(unknown)}")
    nc = arch.get("nc")
    if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= _MAX_CLASSES:
        raise _bad(where, f"nc must be a class count in [1, {_MAX_CLASSES}], got {nc!r}")
    act = arch.get("activation")
    if act is not None and not (isinstance(act, str) and _ACTIVATION.fullmatch(act)):
        raise _bad(where, "activation must be a plain torch.nn activation such as nn.SiLU()")
    for key in ("depth_multiple", "width_multiple"):
        v = arch.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 8:
            raise _bad(where, f"{key} must be in (0, 8], got {v!r}")
    reg_max = arch.get("reg_max", 16)
    if isinstance(reg_max, bool) or not isinstance(reg_max, int) or not 1 <= reg_max <= 64:
        raise _bad(where, f"reg_max must be in [1, 64], got {reg_max!r}")
    channels = arch.get("channels", 3)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 4:
        raise _bad(where, f"channels must be in [1, 4], got {channels!r}")
    for key in ("end2end", "inplace"):
        if arch.get(key) is not None and not isinstance(arch[key], bool):
            raise _bad(where, f"{key} must be true or false")
    if arch.get("yaml_file") is not None and not (
        isinstance(arch["yaml_file"], str) and len(arch["yaml_file"]) <= 256
    ):
        raise _bad(where, "yaml_file must be a short string")
    _check_scales(arch, where)
    rows = [*_rows(arch, "backbone", where), *_rows(arch, "head", where)]
    if not 0 < len(rows) <= _MAX_LAYERS:
        raise _bad(where, f"{len(rows)} layers (at most {_MAX_LAYERS})")
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 4):
            raise _bad(where, f"layer {i} is not [from, repeats, module, args]")
        f, n, m, args = row
        _check_from(f, i, where)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_REPEATS:
            raise _bad(where, f"layer {i} repeats must be in [1, {_MAX_REPEATS}], got {n!r}")
        if not isinstance(m, str) or m not in _LAYERS:
            raise _bad(where, f"layer {i} module {str(m)[:40]!r} is not an allowed detection layer")
        if not isinstance(args, list) or len(args) > 16:
            raise _bad(where, f"layer {i} arguments must be a list of at most 16 values")
        for a in args:
            _check_arg(a, where)
    if rows[-1][2] not in _HEADS:
        raise _bad(where, f"the last layer must be a detection head ({', '.join(sorted(_HEADS))})")
    return arch


def _rows(arch: dict[str, Any], key: str, where: Path) -> list[Any]:
    rows = arch.get(key)
    if not isinstance(rows, list):
        raise _bad(where, f"{key} must be a list of layers")
    return rows
