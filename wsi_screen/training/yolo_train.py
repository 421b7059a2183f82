"""Train a YOLO leukocyte detector with ultralytics and export its weights.

The result is a model folder for ``--detector yolo --detector-weights DIR`` (``weights.safetensors``,
pickle-free; the ``train-detector`` command adds ``detector.json``). The ultralytics run folder
(``run/``) keeps ultralytics' own ``.pt`` checkpoints. ultralytics is reached through
:mod:`wsi_screen.detectors.ultralytics_env` only.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from wsi_screen.detectors.ultralytics_env import as_yolo
from wsi_screen.detectors.ultralytics_env import ultralytics_session
from wsi_screen.detectors.yolo_archs import architecture_name
from wsi_screen.detectors.yolo_archs import packaged_architecture
from wsi_screen.detectors.yolo_archs import user_architecture
from wsi_screen.detectors.yolo_folder import WEIGHTS_FILE
from wsi_screen.detectors.yolo_folder import load_model_folder
from wsi_screen.detectors.yolo_weights import build_detection_model
from wsi_screen.detectors.yolo_weights import is_pickle_file
from wsi_screen.detectors.yolo_weights import pickle_refused
from wsi_screen.detectors.yolo_weights import read_yolo_weights
from wsi_screen.detectors.yolo_weights import save_yolo_weights
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.weights_convert import load_checkpoint_model

log = logging.getLogger(__name__)

_FIXED_ARGS = frozenset({"model", "cfg", "pretrained", "resume", "data", "project", "name"})
"""ultralytics train arguments ``extra`` may not set: the model, its weights, the data and the output are wsi-screen's."""


def training_architecture(arch: str | Path) -> str:
    """The closed-list architecture ``--arch`` names: a name (``yolo11n``) or an architecture YAML.

    A YAML file is read and checked by wsi-screen (:func:`~wsi_screen.detectors.yolo_archs.user_architecture`)
    and must describe one of the networks wsi-screen builds; ultralytics never reads it.

    Raises:
        ModelBundleError: a pickle checkpoint, an unknown name, or a YAML that is refused.
    """
    if is_pickle_file(arch):
        raise pickle_refused(arch)
    if str(arch).lower().endswith((".yaml", ".yml")):
        return user_architecture(arch)
    return architecture_name(str(arch), "--arch")


def export_weights(src: str | Path, dst: str | Path) -> Path:
    """Write the network of a training checkpoint (``run/weights/best.pt`` or ``last.pt``) as safetensors.

    Usable on an interrupted run too. The checkpoint is read with ultralytics' restricted loader
    (``torch.load(weights_only=True)`` with an allow-list of ultralytics and torch model classes),
    never a full unpickle; a checkpoint from elsewhere is converted with ``wsi-screen
    convert-weights`` (an isolated process). The file written is checked to build as the
    closed-list architecture it records before this returns (removed otherwise).

    Raises:
        ModelBundleError: ``src`` is not an ultralytics detection checkpoint the restricted loader
            accepts, ``dst`` names a pickle file, or the network is not one wsi-screen builds.
    """
    dst = Path(dst)
    if is_pickle_file(dst):
        msg = f"{dst}: weights are written as safetensors (e.g. {WEIGHTS_FILE}), not as a pickle"
        raise ModelBundleError(msg)
    try:
        model = load_checkpoint_model(src)
    except ModelBundleError as e:
        msg = f"{src}: {e}"
        raise ModelBundleError(msg) from e
    except Exception as e:  # the restricted loader raises many types for a file it refuses
        msg = f"{src}: not a checkpoint the restricted loader accepts ({type(e).__name__}: {str(e)[:200]})"
        raise ModelBundleError(msg) from e
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_yolo_weights(model.float(), dst)
        with ultralytics_session():
            build_detection_model(read_yolo_weights(dst))
    except ModelBundleError:
        dst.unlink(missing_ok=True)
        raise
    return dst


def _initialised(yolo_cls: Any, init: str | Path) -> Any:  # noqa: ANN401
    """A ``YOLO`` holding the network of ``init`` (safetensors), which training starts from.

    ultralytics copies a loaded model's tensors into the network it trains (``get_model(weights=
    ...)``) only when the model came from a checkpoint (``ckpt`` set, as :func:`as_yolo` does);
    nothing is unpickled.
    """
    folder = load_model_folder(init)
    net = build_detection_model(folder.weights, folder.architecture)
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
    log.info("fine-tuning from %s (%s)", folder.path, folder.architecture)
    return as_yolo(yolo_cls, net)


def _from_scratch(yolo_cls: Any, name: str) -> Any:  # noqa: ANN401
    """A ``YOLO`` holding a fresh network of the packaged architecture ``name``.

    Training rebuilds it from its architecture dict (random weights, ``pretrained`` off); the
    name is never given to ultralytics, which would look for a file of that name.
    """
    tasks = importlib.import_module("ultralytics.nn.tasks")
    net = tasks.DetectionModel(cfg=packaged_architecture(name, 1), ch=3, nc=1, verbose=False)
    return as_yolo(yolo_cls, net)


def train_yolo(
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    arch: str = "yolo11n",
    epochs: int = 10,
    imgsz: int = 416,
    batch: int = 16,
    device: str = "cpu",
    workers: int = 0,
    seed: int = 0,
    init: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Train a YOLO detector (from scratch, or fine-tuned from safetensors weights) and save it.

    Args:
        data_yaml: an ultralytics dataset yaml (absolute ``path``, ``train``, ``val``, ``names``).
        out_dir: folder for ``weights.safetensors`` and the ultralytics run (``run/``).
        arch: an architecture of the closed list (``yolo11n``, ``yolov8n``, ...) or a ``.yaml``
            file describing one (checked by wsi-screen, never read by ultralytics); built from
            ultralytics' packaged YAML, so nothing is downloaded. A ``.pt`` checkpoint is refused
            (it would be unpickled). Ignored with ``init``.
        epochs: training epochs.
        imgsz: training image side.
        batch: batch size.
        device: torch device string.
        workers: dataloader workers.
        seed: random seed.
        init: fine-tune from these weights instead of random ones: a ``weights.safetensors``
            file, a model folder or a shipped name (``yolo-wbc``). The tensors are loaded
            without unpickling; the architecture is then the one they record, not ``arch``.
        extra: further ultralytics train arguments (e.g. ``{"mosaic": 0.5}``).

    Returns:
        The best weights, written as ``out_dir/weights.safetensors``.

    Raises:
        ModelBundleError: training produced no weights, ``arch`` is refused (a pickle
            checkpoint, a network wsi-screen does not build) or ``init`` is.
    """
    name = training_architecture(arch) if init is None else load_model_folder(init).architecture
    fixed = sorted(set(extra or {}) & _FIXED_ARGS)
    if fixed:
        msg = f"train_yolo: {', '.join(fixed)} cannot be overridden (the model is built by wsi-screen)"
        raise ModelBundleError(msg)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args: dict[str, Any] = {
        "data": str(Path(data_yaml).resolve()),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "workers": workers,
        "seed": seed,
        "project": str(out),
        "name": "run",
        "exist_ok": True,
        "pretrained": False,
        "amp": False,
        "plots": False,
        "verbose": False,
    }
    if init is not None:
        # ultralytics warms biases up from lr 0.1, which would throw a trained head away
        args["warmup_bias_lr"] = 0.0
    args.update(extra or {})
    with ultralytics_session() as yolo_cls:
        if init is None:
            model = _from_scratch(yolo_cls, name)
        else:
            model = _initialised(yolo_cls, init)
            args["pretrained"] = True
        model.train(**args)
        trainer = model.trainer
    best = Path(trainer.best) if trainer is not None else out / "run" / "weights" / "best.pt"
    if not best.is_file():
        best = out / "run" / "weights" / "last.pt"
    if not best.is_file():
        msg = f"training wrote no weights under {out / 'run'}"
        raise ModelBundleError(msg)
    target = export_weights(best, out / WEIGHTS_FILE)
    log.info("saved %s (from %s)", target, best)
    return target
