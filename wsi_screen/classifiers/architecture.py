"""What a model bundle may ask timm to build, checked before timm sees it or anything is allocated.

A bundle's ``architecture`` is handed to ``timm.create_model``, which also understands names with
a prefix (``hf-hub:org/model`` downloads from the Hugging Face Hub, ``local-dir:`` reads files) and
keyword arguments that load files or change the network's size. So a bundle may name only a plain
timm model (one of ``timm.list_models()``), its ``model_kwargs`` come from a closed set of
drop-out rates, and the network is first built on PyTorch's ``meta`` device (shapes only, no
memory): its tensors must be exactly those listed in the header of ``model.safetensors`` (read
without its data, sizes checked against the file's length) before the real network is built.
A bundle therefore never makes timm reach the network, and allocates no more than its weights file
holds.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from wsi_screen.errors import ModelBundleError
from wsi_screen.textfiles import parse_json

if TYPE_CHECKING:
    import torch

ARCHITECTURE_NAME = re.compile(r"[a-z0-9_]{1,80}")
"""A plain timm model name (every name ``timm.list_models()`` lists has this form)."""
MODEL_KWARGS: dict[str, tuple[float, float]] = {
    "drop_rate": (0.0, 1.0),
    "drop_path_rate": (0.0, 1.0),
    "drop_block_rate": (0.0, 1.0),
    "attn_drop_rate": (0.0, 1.0),
    "proj_drop_rate": (0.0, 1.0),
    "pos_drop_rate": (0.0, 1.0),
}
"""The ``model_kwargs`` a bundle may carry and their ranges: drop-out rates, which act in training only."""
MAX_HEADER_BYTES = 16 << 20
"""Largest safetensors header read (its JSON list of tensor names, dtypes, shapes and offsets)."""
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


def check_architecture_name(name: object, where: str) -> str:
    """``name`` if it has the form of a plain timm model name.

    Raises:
        ModelBundleError: not a string of lowercase letters, digits and underscores (a Hub or file
            prefix such as ``hf-hub:``, a pretrained tag or a path is refused).
    """
    if not isinstance(name, str) or not ARCHITECTURE_NAME.fullmatch(name):
        msg = (
            f"{where}: architecture must be a plain timm model name such as 'resnet18' (lowercase "
            f"letters, digits, '_'; no 'hf-hub:' or other prefix), got {str(name)!r:.80}"
        )
        raise ModelBundleError(msg)
    return name


def check_model_kwargs(kwargs: object, where: str) -> dict[str, float]:
    """``kwargs`` if every key is one of :data:`MODEL_KWARGS` and every value a number in its range.

    Raises:
        ModelBundleError: not an object, an unknown key, or a value that is not a number in range.
    """
    if not isinstance(kwargs, dict):
        msg = f"{where}: model_kwargs must be an object"
        raise ModelBundleError(msg)
    unknown = sorted(str(k) for k in kwargs if k not in MODEL_KWARGS)
    if unknown:
        msg = (
            f"{where}: model_kwargs {', '.join(repr(k[:40]) for k in unknown[:5])} not accepted; "
            f"a bundle may set {', '.join(MODEL_KWARGS)}"
        )
        raise ModelBundleError(msg)
    out: dict[str, float] = {}
    for key, value in kwargs.items():
        lo, hi = MODEL_KWARGS[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (math.isfinite(value) and lo <= value <= hi):
            msg = f"{where}: model_kwargs.{key} must be a number in [{lo:g}, {hi:g}], got {value!r:.40}"
            raise ModelBundleError(msg)
        out[key] = float(value)
    return out


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the header of the safetensors file ``path`` (no tensor data read).

    Every tensor's byte range must lie in the file and match its dtype and shape, so the shapes
    returned describe no more data than the file holds.

    Raises:
        ModelBundleError: unreadable, a header too large or malformed, or sizes that do not add up.
    """
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            head = f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                msg = f"{path}: not a readable safetensors file (header of {n} bytes in a {size}-byte file)"
                raise ModelBundleError(msg)
            raw = f.read(n)
    except OSError as e:
        msg = f"{path}: cannot read ({e.strerror or e})"
        raise ModelBundleError(msg) from e
    try:
        header = parse_json(raw.decode("utf-8"), path, error=ModelBundleError, max_depth=4)
    except UnicodeDecodeError as e:
        msg = f"{path}: not a readable safetensors file (header is not UTF-8)"
        raise ModelBundleError(msg) from e
    if not isinstance(header, dict):
        msg = f"{path}: not a readable safetensors file (header is not a JSON object)"
        raise ModelBundleError(msg)
    data_bytes = size - 8 - n
    shapes: dict[str, tuple[int, ...]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shapes[name] = _tensor_shape(path, name, info, data_bytes)
    return shapes


def _tensor_shape(path: Path, name: str, info: Any, data_bytes: int) -> tuple[int, ...]:
    """The shape of one header entry, after checking its dtype and byte range against the file."""
    ok = (
        isinstance(info, dict)
        and isinstance(info.get("shape"), list)
        and isinstance(info.get("data_offsets"), list)
    )
    shape: list[Any] = info["shape"] if ok else []
    offsets: list[Any] = info["data_offsets"] if ok else []
    ints = [*shape, *offsets]
    ok = ok and len(offsets) == 2 and all(type(v) is int and v >= 0 for v in ints)
    item = DTYPE_BYTES.get(str(info.get("dtype"))) if ok else None
    if (
        item is None
        or not offsets[0] <= offsets[1] <= data_bytes
        or offsets[1] - offsets[0] != math.prod(shape) * item
    ):
        msg = f"{path}: not a readable safetensors file (tensor {name[:80]!r}: bad dtype, shape or offsets)"
        raise ModelBundleError(msg)
    return tuple(shape)


def _difference(want: dict[str, tuple[int, ...]], have: dict[str, tuple[int, ...]]) -> str:
    """The first few differences between two name -> shape tables, on one line."""
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    shaped = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    parts = [f"{k} {want[k]} vs {have[k]} in the file" for k in shaped[:2]]
    parts += [f"{len(missing)} tensor(s) missing from the file, e.g. {missing[0]}"] if missing else []
    parts += [f"{len(extra)} unexpected, e.g. {extra[0]}"] if extra else []
    return "; ".join(parts)


def build_model(
    architecture: str,
    num_classes: int,
    model_kwargs: dict[str, float],
    weights: Path | None,
    where: str,
) -> torch.nn.Module:
    """The timm network ``architecture`` (no pretrained weights, nothing downloaded), in eval mode.

    With ``weights``, the network is first built on the ``meta`` device and its tensor names and
    shapes compared with the file's header; only an exact match is built for real, and the file's
    tensors are loaded into it (safetensors: no pickle).

    Raises:
        ModelBundleError: not a timm model name, kwargs timm refuses, or weights that do not fit
            (the message names the file and the first differences).
    """
    import timm
    import torch

    name = check_architecture_name(architecture, where)
    if not timm.is_model(name) or name not in timm.list_models():
        msg = f"{where}: architecture {name!r} is not a timm model (timm {timm.__version__})"
        raise ModelBundleError(msg)
    kwargs: dict[str, Any] = dict(check_model_kwargs(model_kwargs, where))

    def create() -> torch.nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)

    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            skeleton = create()
    except Exception as e:  # noqa: BLE001 - timm raises TypeError, AssertionError... for kwargs a model lacks
        msg = f"{where}: cannot build timm architecture {name!r} with {kwargs}: {type(e).__name__}: {e}"
        raise ModelBundleError(" ".join(msg.split())) from e
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    del skeleton
    if weights is not None:
        have = safetensors_shapes(weights)
        if have != want:
            n_want = sum(math.prod(s) for s in want.values())
            n_have = sum(math.prod(s) for s in have.values())
            msg = (
                f"{weights}: weights do not fit {name!r} with {num_classes} classes "
                f"({n_have:,} values in the file, {n_want:,} in the network): {_difference(want, have)}"
            )
            raise ModelBundleError(msg)
    model = create()
    if weights is not None:
        _load_weights(model, weights, name)
    return model.eval()


def _load_weights(model: torch.nn.Module, weights: Path, name: str) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - SafetensorError (garbage, truncated), OSError
        msg = f"{weights}: not a readable safetensors file ({type(e).__name__}: {e})"
        raise ModelBundleError(msg) from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        msg = f"{weights}: weights do not fit {name!r}: {' '.join(str(e).split())}"
        raise ModelBundleError(msg) from e
