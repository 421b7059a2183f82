"""Model bundles: a folder with ``model.json`` (metadata) and ``model.safetensors`` (weights).

A bundle carries everything needed to reproduce the evaluation transform (timm's ``PretrainedCfg``
idea): architecture name, class codes, input size, normalisation and the physical scale of the
training patches. Weights are loaded with safetensors, so loading a bundle never executes pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from wsi_screen.blast_rates import BlastRates
from wsi_screen.classifiers.architecture import build_model
from wsi_screen.classifiers.architecture import check_architecture_name
from wsi_screen.classifiers.architecture import check_model_kwargs
from wsi_screen.classifiers.calibration import Calibration
from wsi_screen.classifiers.preprocess import INTERPOLATIONS
from wsi_screen.errors import ModelBundleError
from wsi_screen.io import atomic_path
from wsi_screen.io import atomic_write_text
from wsi_screen.io import sha256_file
from wsi_screen.textfiles import read_json_object

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
MATEK_MPP = 0.0862  # documented scale of the Matek 2021 patches (3.45 um camera pixel / 40x)
MAX_INPUT_SIZE = 1024
"""Largest network input side a bundle may declare (px)."""
MAX_PATCH_PX = 2048
"""Largest patch side a bundle may declare (px at its mpp)."""
MAX_CLASSES = 256
"""Most classes a bundle may declare."""
_REQUIRED = ("architecture", "class_names", "input_size", "mean", "std", "patch_size_px", "mpp")
PREPROCESSING: frozenset[str | None] = frozenset({None, "shah"})


def _check_numbers(bundle: ModelBundle, where: str) -> None:
    """The scale, normalisation and resize method must make sense: they decide what the model sees."""
    if not (math.isfinite(bundle.mpp) and 0.01 <= bundle.mpp <= 100.0):
        msg = f"{where}: mpp must be the training patches' microns per pixel (0.01-100), got {bundle.mpp}"
        raise ModelBundleError(msg)
    if not all(math.isfinite(v) for v in bundle.mean) or not all(
        math.isfinite(v) and v > 0 for v in bundle.std
    ):
        msg = f"{where}: mean must be finite and std finite and > 0, got {bundle.mean} / {bundle.std}"
        raise ModelBundleError(msg)
    if bundle.interpolation not in INTERPOLATIONS:
        msg = (
            f"{where}: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {bundle.interpolation!r}"
        )
        raise ModelBundleError(msg)


@dataclass(frozen=True)
class ModelBundle:
    """Metadata of a patch classifier; ``path`` is the folder it was loaded from (if any).

    Attributes:
        architecture: timm model name, e.g. ``resnet18`` (a plain name: no ``hf-hub:`` or other prefix).
        class_names: class codes in output order (Matek codes such as ``BLA``).
        input_size: side in pixels of the square image the network sees.
        mean: per-channel normalisation mean (RGB, 0-1 scale).
        std: per-channel normalisation std.
        patch_size_px: side of the crop cut from the source at ``mpp`` before resizing.
        mpp: microns per pixel of the training patches.
        name: human-readable identifier.
        interpolation: resize interpolation, ``bilinear`` or ``area``.
        preprocess: preprocessing applied to every 250 px patch before resizing, in training and
            at inference alike: None, or ``shah`` (NLM denoising + sharpening, Shah et al.).
        model_kwargs: extra keyword arguments for ``timm.create_model``: drop-out rates only
            (:data:`~wsi_screen.classifiers.architecture.MODEL_KWARGS`).
        provenance: data, recipe and licence of the training.
        metrics: validation metrics measured at training time.
        calibration: temperature scaling fitted on validation data (model.json ``calibration``),
            applied to every probability at inference; None: uncalibrated softmax.
        domain: the model.json ``domain`` block (what the model saw in training, for the
            out-of-domain gate; its tensors are in the file it names), or None.
        blast_rates: the pipeline's measured blast confusion on validation cells (model.json
            ``blast_rates``), which the blast % is adjusted for; None: not measured.
    """

    architecture: str
    class_names: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch_size_px: int = 250
    mpp: float = MATEK_MPP
    name: str = ""
    interpolation: str = "bilinear"
    preprocess: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    format_version: int = FORMAT_VERSION
    calibration: Calibration | None = None
    domain: dict[str, Any] | None = None
    blast_rates: BlastRates | None = None

    @property
    def patch_size_um(self) -> float:
        """Physical side of a training patch in microns."""
        return self.patch_size_px * self.mpp

    def to_json(self) -> dict[str, Any]:
        """Return the model.json content."""
        d = asdict(self)
        d.pop("path")
        d.pop("calibration")
        d.pop("blast_rates")
        if self.domain is None:
            d.pop("domain")
        if self.blast_rates is not None:
            d["blast_rates"] = self.blast_rates.to_json()
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_json()
        d["class_names"] = list(self.class_names)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> ModelBundle:
        """Validate and build from a parsed model.json."""
        where = f"{path / MODEL_JSON}" if path else MODEL_JSON
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            msg = f"{where}: missing key(s) {', '.join(missing)}"
            raise ModelBundleError(msg)
        raw_names = data["class_names"]
        if not isinstance(raw_names, list) or not all(isinstance(c, str) and c for c in raw_names):
            msg = f"{where}: class_names must be a list of non-empty strings, got {type(raw_names).__name__}"
            raise ModelBundleError(msg)
        architecture = check_architecture_name(data["architecture"], where)
        model_kwargs = check_model_kwargs(data.get("model_kwargs", {}), where)
        try:
            names = tuple(raw_names)
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
            if len(mean) != 3 or len(std) != 3:
                msg = f"{where}: mean and std need 3 values (RGB)"
                raise ModelBundleError(msg)
            bundle = cls(
                architecture=architecture,
                class_names=names,
                input_size=int(data["input_size"]),
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                patch_size_px=int(data.get("patch_size_px", 250)),
                mpp=float(data["mpp"]),
                name=str(data.get("name", path.name if path else "")),
                interpolation=str(data.get("interpolation", "bilinear")),
                preprocess=data.get("preprocess"),
                model_kwargs=model_kwargs,
                provenance=dict(data.get("provenance", {})),
                metrics=dict(data.get("metrics", {})),
                path=path,
                format_version=int(data.get("format_version", FORMAT_VERSION)),
                domain=_domain_block(data.get("domain"), where),
                calibration=(
                    Calibration.from_json(data["calibration"], where)
                    if data.get("calibration") is not None
                    else None
                ),
                blast_rates=(
                    BlastRates.from_json(data["blast_rates"], where)
                    if data.get("blast_rates") is not None
                    else None
                ),
            )
        except (TypeError, ValueError) as e:
            msg = f"{where}: invalid value: {e}"
            raise ModelBundleError(msg) from e
        if len(set(names)) != len(names) or not names:
            msg = f"{where}: class_names must be non-empty and unique"
            raise ModelBundleError(msg)
        if bundle.preprocess not in PREPROCESSING:
            msg = f"{where}: preprocess must be null or one of {', '.join(sorted(p for p in PREPROCESSING if p))}"
            raise ModelBundleError(msg)
        for key, value, hi in (
            ("input_size", bundle.input_size, MAX_INPUT_SIZE),
            ("patch_size_px", bundle.patch_size_px, MAX_PATCH_PX),
        ):
            if not 8 <= value <= hi:
                msg = f"{where}: {key} must be 8-{hi}, got {value}"
                raise ModelBundleError(msg)
        if len(names) > MAX_CLASSES:
            msg = f"{where}: {len(names)} class_names, more than {MAX_CLASSES}"
            raise ModelBundleError(msg)
        _check_numbers(bundle, where)
        return bundle

    @classmethod
    def load(cls, folder: str | Path) -> ModelBundle:
        """Read and validate ``folder/model.json``; check the weights file exists."""
        folder = Path(folder)
        meta = folder / MODEL_JSON
        if not meta.is_file():
            msg = f"{folder}: not a model bundle (no {MODEL_JSON})"
            raise ModelBundleError(msg)
        if not (folder / WEIGHTS).is_file():
            msg = f"{folder}: model bundle has no {WEIGHTS}"
            raise ModelBundleError(msg)
        data = read_json_object(meta, error=ModelBundleError)  # size, depth and UTF-8 checked
        return cls.from_json(data, path=folder)

    @property
    def weights_path(self) -> Path:
        """Path of the safetensors weights."""
        if self.path is None:
            msg = "bundle has no folder; save it first"
            raise ModelBundleError(msg)
        return self.path / WEIGHTS

    def sha256(self) -> str:
        """SHA-256 of the weights file (identifies the model in reports and ledgers)."""
        return sha256_file(self.weights_path)

    def create_model(self, *, load_weights: bool = True) -> torch.nn.Module:
        """Build the timm network and load the bundle's weights (no pickle, no download).

        The architecture must be a plain timm name and the weights must list exactly the network's
        tensors, checked on the ``meta`` device before anything is allocated
        (:func:`~wsi_screen.classifiers.architecture.build_model`).
        """
        where = str(self.path / MODEL_JSON) if self.path else MODEL_JSON
        weights = self.weights_path if load_weights else None
        return build_model(self.architecture, len(self.class_names), self.model_kwargs, weights, where)

    def save(self, folder: str | Path, model: torch.nn.Module) -> ModelBundle:
        """Write model.json and model.safetensors into ``folder`` atomically; return the bundle."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp), metadata={"architecture": self.architecture})
        atomic_write_text(folder / MODEL_JSON, json.dumps(self.to_json(), indent=2) + "\n")
        return ModelBundle.from_json(self.to_json(), path=folder)


def _domain_block(block: object, where: str) -> dict[str, Any] | None:
    """The model.json ``domain`` block, checked to be an object naming a plain file in the bundle."""
    if block is None:
        return None
    if not isinstance(block, dict):
        msg = f"{where}: domain must be an object, got {type(block).__name__}"
        raise ModelBundleError(msg)
    file = block.get("file")
    if not isinstance(file, str) or not file or Path(file).name != file:
        msg = f"{where}: domain.file must name a file inside the bundle folder, got {file!r}"
        raise ModelBundleError(msg)
    return dict(block)
