"""YOLO detector weights without pickle: a safetensors state dict that names its architecture.

An ultralytics ``.pt`` checkpoint is a pickle: loading one runs whatever code it names. A
``weights.safetensors`` file holds only tensors and a JSON header; the network is one of a closed
list of ultralytics architectures (:mod:`wsi_screen.detectors.yolo_archs`), built from the YAML
packaged with ultralytics, and the file's tensors must load into it exactly, so a detector file
can change numbers but never run code or swap the network.

Header metadata (the safetensors ``__metadata__``, all strings):

- ``format`` ``wsi-screen-yolo``, ``format_version`` ``1``, ``task`` ``detect``;
- ``architecture``: the model's YAML as JSON (``nc``, ``scales``, ``scale``, ``backbone``, ``head``,
  ``yaml_file``, which names the architecture: ``yolo11n.yaml``);
- ``names``: the class names, a JSON object such as ``{"0": "WBC"}``.

ultralytics builds layers by looking their names up in a module namespace, turns string arguments
into values and ``eval``s an ``activation`` key, so the header's architecture is checked against an
allow-list (:mod:`wsi_screen.detectors.yolo_arch_check`) before anything else looks at it, and must describe the
same network as the packaged YAML. That network is first built on the ``meta`` device (no memory)
and its tensor names and shapes compared with the file's, so weights that would not load exactly,
or an architecture that would allocate more than the file holds, are refused before any memory is
spent.
"""

from __future__ import annotations

import copy
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from wsi_screen.detectors.yolo_arch_check import check_architecture
from wsi_screen.detectors.yolo_archs import packaged_architecture
from wsi_screen.detectors.yolo_archs import resolve_architecture
from wsi_screen.detectors.yolo_archs import same_network
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


def _check_shapes(weights: YoloWeights, arch: dict[str, Any]) -> None:
    """Build ``arch`` on the meta device; its tensors must be the file's: same names, same shapes."""
    import torch

    tasks = importlib.import_module("ultralytics.nn.tasks")  # the caller holds ultralytics_session
    arch = copy.deepcopy(arch)
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


def build_detection_model(weights: YoloWeights, architecture: str | None = None) -> torch.nn.Module:
    """Build the closed-list network of ``weights`` and load its tensors exactly (fp32, eval).

    The network is ultralytics' packaged YAML of ``architecture`` (a name of
    :data:`~wsi_screen.detectors.yolo_archs.ARCHITECTURES`; None: the one the header records), never
    the header's own description, which must describe the same network. The file's tensors must
    be that network's: the same names and shapes, none missing, none extra.

    Call inside :func:`wsi_screen.detectors.ultralytics_env.ultralytics_session`.

    Raises:
        ModelBundleError: an architecture outside the list, a header describing another network, or
            tensors that do not load exactly.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    name = resolve_architecture(architecture, weights.architecture, weights.path, weights.path)
    arch = packaged_architecture(name, len(weights.names))
    if not same_network(weights.architecture, arch):
        msg = f"its header describes a network other than ultralytics' packaged {name}"
        raise _bad(weights.path, msg)
    _check_shapes(weights, arch)
    default_cfg = importlib.import_module("ultralytics.cfg").DEFAULT_CFG_DICT
    net: Any = importlib.import_module("ultralytics.nn.tasks").DetectionModel(
        cfg=copy.deepcopy(arch), ch=int(arch.get("channels", 3)), nc=len(weights.names), verbose=False
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
