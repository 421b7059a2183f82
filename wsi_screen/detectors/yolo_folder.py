"""A YOLO model folder: where its weights are, what its ``detector.json`` may say, what it builds.

A model folder holds ``weights.safetensors`` (tensors and a checked header, see
:mod:`wsi_screen.detectors.yolo_weights`) and optionally ``detector.json`` (training scale, class
selection, operating confidence, a display name and the architecture). Everything here is read and
checked without importing ultralytics: :func:`load_model_folder` is what a batch runs before any
input is hashed, and what the detector runs before ultralytics is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.detectors.yolo_archs import architecture_name
from wsi_screen.detectors.yolo_archs import resolve_architecture
from wsi_screen.detectors.yolo_weights import SAFE_WEIGHTS_FILE
from wsi_screen.detectors.yolo_weights import YoloWeights
from wsi_screen.detectors.yolo_weights import is_pickle_file
from wsi_screen.detectors.yolo_weights import pickle_refused
from wsi_screen.detectors.yolo_weights import read_yolo_weights
from wsi_screen.errors import ModelBundleError
from wsi_screen.textfiles import read_json_object

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
"""Folder of the models shipped with the package."""

DEFAULT_MODEL = "yolo-wbc"
WEIGHTS_FILE = SAFE_WEIGHTS_FILE
"""The weights of a model folder: a safetensors file that cannot run code (``weights.safetensors``)."""
PICKLE_WEIGHTS_FILE = "weights.pt"
"""An ultralytics checkpoint in a model folder: refused with a message saying how to convert it."""
CONFIG_FILE = "detector.json"
MAX_CONFIG_BYTES = 1 << 20
"""Largest ``detector.json`` read (the shipped one is 1.5 kB)."""
_LABEL = re.compile(r"[^\x00-\x1f\x7f-\x9f/\\:]{1,100}")


def resolve_model_dir(weights: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """Resolve a weights file, a model folder or a shipped name to (weights path, config).

    Args:
        weights: None (the shipped ``yolo-wbc``), a shipped model name, a folder holding
            ``weights.safetensors`` (and optionally ``detector.json``), or a weights file.

    Returns:
        The weights file and the folder's ``detector.json`` (empty when absent).

    Raises:
        ModelBundleError: the name, folder or file does not exist, lacks weights, is a pickle
            checkpoint (refused, with how to convert it), or its ``detector.json`` is not JSON.
    """
    name = DEFAULT_MODEL if weights is None else weights
    path = Path(name)
    if not path.exists() and isinstance(name, str) and (MODELS_DIR / name).is_dir():
        path = MODELS_DIR / name
    if path.is_dir():
        wfile = path / WEIGHTS_FILE
        if not wfile.is_file():
            pickled = path / PICKLE_WEIGHTS_FILE
            if not pickled.is_file():
                msg = f"{path}: no {WEIGHTS_FILE} in the model folder"
                raise ModelBundleError(msg)
            raise pickle_refused(pickled)
        return wfile, read_detector_json(path / CONFIG_FILE)
    if path.is_file():
        if is_pickle_file(path):
            raise pickle_refused(path)
        return path, read_detector_json(path.parent / CONFIG_FILE)
    shipped = sorted(p.name for p in MODELS_DIR.glob("yolo*") if p.is_dir())
    msg = (
        f"YOLO weights {str(name)[:200]!r} not found; give a {WEIGHTS_FILE} file, a model folder or a "
        f"shipped name ({', '.join(shipped) or 'none shipped'})"
    )
    raise ModelBundleError(msg)


def read_detector_json(path: Path) -> dict[str, Any]:
    """A model folder's ``detector.json`` ({} when absent), read bounded; a broken one is a one-line error."""
    if not path.is_file():
        return {}
    try:
        return read_json_object(path, error=ModelBundleError, max_bytes=MAX_CONFIG_BYTES, max_depth=16)
    except ModelBundleError as e:
        said = str(e).removeprefix(f"{path}: ")
        msg = f"{path}: not a readable detector.json ({said})"
        raise ModelBundleError(msg) from e


def check_label(value: object, where: str | Path, key: str = "name") -> str:
    """Return ``value`` if it is a display name: 1-100 printable characters, no slash, backslash or colon.

    A name only labels the model in reports; it is refused when it looks like a path or a URL.

    Raises:
        ModelBundleError: anything else.
    """
    if isinstance(value, str) and _LABEL.fullmatch(value) and value.isprintable():
        return value
    msg = (
        f"{where}: {key} must be 1-100 printable characters without '/', '\\' or ':' "
        f"(a label, not a path or URL), got {repr(value)[:80]}"
    )
    raise ModelBundleError(msg)


def _number_in(cfg: dict[str, Any], key: str, lo: float, hi: float) -> bool:
    value = cfg.get(key)
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
    )


def check_detector_json(cfg: dict[str, Any], where: Path) -> None:
    """Types and ranges of the detector.json keys the adapter uses; a bad one is a one-line error."""
    if not _number_in(cfg, "mpp", 0.01, 100):
        msg = f"{where}: mpp must be a number of microns per pixel (0.01-100), got {cfg.get('mpp')!r}"[:300]
        raise ModelBundleError(msg)
    classes = cfg.get("cell_classes")
    if classes is not None and not (
        isinstance(classes, list)
        and len(classes) <= 1000
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1000 for c in classes)
    ):
        msg = f"{where}: cell_classes must be a list of class indices, got {classes!r}"[:300]
        raise ModelBundleError(msg)
    if not _number_in(cfg, "conf", 0.0, 1.0):
        msg = f"{where}: conf must be a confidence in [0, 1], got {cfg.get('conf')!r}"[:300]
        raise ModelBundleError(msg)
    if cfg.get("name") is not None:
        check_label(cfg["name"], where)
    if cfg.get("architecture") is not None:
        architecture_name(cfg["architecture"], where)


@dataclass(frozen=True)
class ModelFolder:
    """A model folder, checked: its weights header, its ``detector.json`` and the network it builds.

    Attributes:
        weights: the checked weights header (no tensor read).
        config: ``detector.json`` ({} when absent), checked.
        architecture: the closed-list architecture the weights are built as (``yolo11n``, ...).
    """

    weights: YoloWeights
    config: dict[str, Any]
    architecture: str

    @property
    def path(self) -> Path:
        """The weights file."""
        return self.weights.path


def load_model_folder(spec: str | Path | None) -> ModelFolder:
    """Resolve and check a model folder, weights file or shipped name; ultralytics is not imported.

    Raises:
        ModelBundleError: missing or pickle weights, a bad ``detector.json``, a weights header that
            is not this format, or an architecture outside the closed list (or two that disagree).
    """
    path, cfg = resolve_model_dir(spec)
    cfg_path = path.parent / CONFIG_FILE
    check_detector_json(cfg, cfg_path)
    weights = read_yolo_weights(path)
    arch = resolve_architecture(cfg.get("architecture"), weights.architecture, cfg_path, path)
    return ModelFolder(weights=weights, config=cfg, architecture=arch)
