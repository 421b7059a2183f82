"""YOLO detector weights without pickle: a safetensors state dict that carries its architecture.

An ultralytics ``.pt`` checkpoint is a pickle: loading one runs whatever code it names. A
``weights.safetensors`` file holds only tensors and a JSON header; the network is rebuilt from the
architecture recorded in that header through ultralytics' own ``DetectionModel``, so a detector
file can change numbers but never run code.

Header metadata (the safetensors ``__metadata__``, all strings):

- ``format`` ``wsi-screen-yolo``, ``format_version`` ``1``, ``task`` ``detect``;
- ``architecture``: the model's YAML as JSON (``nc``, ``scales``, ``scale``, ``backbone``, ``head``);
- ``names``: the class names, a JSON object such as ``{"0": "WBC"}``.

ultralytics builds layers by looking their names up in a module namespace, turns string arguments
into values and ``eval``s an ``activation`` key, so the architecture is checked against an
allow-list before ultralytics sees it. It is then built on the ``meta`` device (no memory) and
its tensor shapes compared with the file's, so an architecture that would allocate more than the
file holds is refused before any memory is spent.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from wsi_screen.errors import ModelBundleError
from wsi_screen.io import atomic_path

if TYPE_CHECKING:
    import torch

SAFE_WEIGHTS_FILE = "weights.safetensors"
FORMAT = "wsi-screen-yolo"
FORMAT_VERSION = "1"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
"""Suffixes of files loaded by unpickling (torch.save / ultralytics checkpoints)."""
MAX_WEIGHTS_BYTES = 2 << 30
"""Largest weights file read (YOLO11x is about 110 MB in fp16)."""
_MAX_HEADER_CHARS = 1 << 20
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


@dataclass(frozen=True)
class YoloWeights:
    """What a ``weights.safetensors`` header says, checked; no tensor is read.

    Attributes:
        path: the file.
        architecture: the ultralytics model dict (checked against the allow-list).
        names: class index -> name.
        shapes: tensor name -> shape, as stored.
    """

    path: Path
    architecture: dict[str, Any]
    names: dict[int, str]
    shapes: dict[str, tuple[int, ...]]


def is_pickle_file(path: str | Path) -> bool:
    """Whether ``path`` names a file that is loaded by unpickling (``.pt`` and kin)."""
    return Path(path).name.lower().endswith(PICKLE_SUFFIXES)


def pickle_refused(path: str | Path) -> ModelBundleError:
    """The one-line error for a pickle checkpoint given where only safe weights are loaded."""
    msg = (
        f"{path}: refusing to load a pickle checkpoint (loading it can run any code it contains); "
        f"convert it once with `wsi-screen convert-weights {path} -o FOLDER` (ultralytics' restricted "
        "loader, in an isolated process; only for a file you trust) and use FOLDER"
    )
    return ModelBundleError(msg)


def _bad(where: Path, what: str) -> ModelBundleError:
    return ModelBundleError(f"{where}: not wsi-screen YOLO weights ({what})")


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


def _json_field(meta: dict[str, str], key: str, where: Path) -> Any:
    text = meta.get(key)
    if not isinstance(text, str) or len(text) > _MAX_HEADER_CHARS:
        raise _bad(where, f"header field {key!r} missing or too long")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _bad(where, f"header field {key!r} is not valid JSON") from e


def _names(raw: object, nc: int, where: Path) -> dict[int, str]:
    if not isinstance(raw, dict) or len(raw) != nc:
        raise _bad(where, f"names must map each of the {nc} class indices to a name")
    out: dict[int, str] = {}
    for k, v in raw.items():
        if not (
            isinstance(k, str) and k.isdigit() and int(k) < nc and isinstance(v, str) and 0 < len(v) <= 200
        ):
            raise _bad(where, f"class name entry {str(k)[:20]!r}: {str(v)[:40]!r}")
        out[int(k)] = v
    return out


def read_yolo_weights(path: str | Path) -> YoloWeights:
    """Read and check a ``weights.safetensors`` header (architecture, names, tensor shapes).

    Raises:
        ModelBundleError: the file is missing, too large, not safetensors (garbage, truncated), not
            in this format, or describes an architecture that is not allowed.
    """
    from safetensors import SafetensorError
    from safetensors import safe_open

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        msg = f"{path}: cannot read YOLO weights ({e.strerror or e})"
        raise ModelBundleError(msg) from e
    if size > MAX_WEIGHTS_BYTES:
        raise _bad(path, f"{size} bytes, more than the {MAX_WEIGHTS_BYTES} allowed")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            shapes = {k: tuple(int(d) for d in f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _bad(path, f"not a readable safetensors file: {str(e).splitlines()[0][:200]}") from e
    if meta.get("format") != FORMAT:
        raise _bad(path, f"header format {str(meta.get('format'))[:40]!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("task") != "detect":
        raise _bad(path, "unsupported format_version or task")
    arch = check_architecture(_json_field(meta, "architecture", path), path)
    names = _names(_json_field(meta, "names", path), int(arch["nc"]), path)
    return YoloWeights(path=path, architecture=arch, names=names, shapes=shapes)


def _check_shapes(weights: YoloWeights) -> None:
    """Build the architecture on the meta device and compare its tensors with the file's."""
    import torch

    tasks = importlib.import_module("ultralytics.nn.tasks")  # the caller holds ultralytics_session
    arch = copy.deepcopy(weights.architecture)
    try:
        with torch.device("meta"):
            layers, _ = tasks.parse_model(arch, ch=int(arch.get("channels", 3)), verbose=False)
    except Exception as e:  # ultralytics raises many types for an inconsistent architecture
        raise _bad(weights.path, f"architecture cannot be built: {type(e).__name__}: {str(e)[:200]}") from e
    built = {f"model.{k}": tuple(v.shape) for k, v in layers.state_dict().items()}
    if built != weights.shapes:
        missing = sorted(set(built) - set(weights.shapes))[:3]
        extra = sorted(set(weights.shapes) - set(built))[:3]
        differ = [k for k in built if k in weights.shapes and built[k] != weights.shapes[k]][:3]
        raise _bad(
            weights.path,
            f"tensors do not fit the architecture (missing {missing}, unexpected {extra}, shape differs {differ})",
        )


def build_detection_model(weights: YoloWeights) -> torch.nn.Module:
    """Build the ultralytics ``DetectionModel`` of ``weights`` and load its tensors (fp32, eval).

    Call inside :func:`wsi_screen.detectors.ultralytics_env.ultralytics_session`.

    Raises:
        ModelBundleError: the architecture cannot be built or the tensors do not fit it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_shapes(weights)
    default_cfg = importlib.import_module("ultralytics.cfg").DEFAULT_CFG_DICT
    arch = copy.deepcopy(weights.architecture)
    net: Any = importlib.import_module("ultralytics.nn.tasks").DetectionModel(
        cfg=arch, ch=int(arch.get("channels", 3)), nc=len(weights.names), verbose=False
    )
    try:
        state = load_file(str(weights.path))
        net.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise _bad(weights.path, f"cannot load the tensors: {str(e).splitlines()[0][:200]}") from e
    net.names = dict(weights.names)
    net.args = {**default_cfg, "task": "detect"}
    net.task = "detect"
    net.pt_path = str(weights.path)
    net.float().eval()
    return cast("torch.nn.Module", net)


def as_yolo(yolo_cls: Any, net: torch.nn.Module, label: str) -> Any:
    """Wrap a built ``DetectionModel`` in ultralytics' ``YOLO`` interface (predict, train, val).

    ``YOLO(path)`` would load ``path`` itself (by unpickling for ``.pt``); this subclass takes the
    network already built instead, with the overrides a loaded checkpoint would have.
    """

    class _Built(yolo_cls):  # type: ignore[misc]
        def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
            del task, verbose
            self.cfg = None
            self.task = "detect"
            self.model = net
            self.overrides = {"task": "detect", "model": cfg}
            self.model_name = cfg

    return _Built(f"{label}.yaml", task="detect")


def save_yolo_weights(model: Any, path: str | Path) -> Path:
    """Write an ultralytics detection model's state dict and architecture as safetensors (atomic).

    The file written is checked by :func:`read_yolo_weights` before it replaces ``path``.

    Raises:
        ModelBundleError: the model is not a detection model this format can hold.
    """
    from safetensors.torch import save_file

    path = Path(path)
    arch = copy.deepcopy(getattr(model, "yaml", None))
    names = getattr(model, "names", None)
    if not isinstance(arch, dict) or not isinstance(names, dict):
        msg = f"{path}: the model has no ultralytics architecture (yaml) or class names"
        raise ModelBundleError(msg)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "detect",
        "architecture": json.dumps(arch),
        "names": json.dumps({str(int(k)): str(v) for k, v in names.items()}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
        read_yolo_weights(tmp)
    return path
