"""Train a YOLO leukocyte detector with ultralytics and export its weights.

The result is a model folder for ``--detector yolo --detector-weights DIR`` (``weights.safetensors``,
pickle-free; the ``train-detector`` command adds ``detector.json``). The ultralytics run folder
(``run/``) keeps ultralytics' own ``.pt`` checkpoints. ultralytics is reached through
:mod:`wsi_screen.detectors.ultralytics_env` only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wsi_screen.detectors.ultralytics_env import strip_optimizer
from wsi_screen.detectors.ultralytics_env import ultralytics_session
from wsi_screen.detectors.yolo import WEIGHTS_FILE
from wsi_screen.detectors.yolo_weights import is_pickle_file
from wsi_screen.detectors.yolo_weights import pickle_refused
from wsi_screen.detectors.yolo_weights import save_yolo_weights
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.weights_convert import load_checkpoint_model

log = logging.getLogger(__name__)


def export_weights(src: str | Path, dst: str | Path) -> Path:
    """Copy an ultralytics checkpoint to ``dst`` without optimizer state (EMA weights, fp16).

    Checkpoints saved during training carry the optimizer and are ~5x larger; this is what
    ultralytics does to ``best.pt`` at the end of training, usable on an interrupted run too.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not strip_optimizer(src, dst):
        msg = f"{src}: not an ultralytics checkpoint"
        raise ModelBundleError(msg)
    return dst


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
    extra: dict[str, Any] | None = None,
) -> Path:
    """Train a YOLO detector from scratch (architecture yaml, no download) and save its weights.

    Args:
        data_yaml: an ultralytics dataset yaml (absolute ``path``, ``train``, ``val``, ``names``).
        out_dir: folder for ``weights.safetensors`` and the ultralytics run (``run/``).
        arch: an ultralytics architecture name (``yolo11n``, ``yolov8n``, ...) or a ``.yaml``
            file; names are built from their yaml, so nothing is downloaded. A ``.pt`` checkpoint
            is refused (it would be unpickled).
        epochs: training epochs.
        imgsz: training image side.
        batch: batch size.
        device: torch device string.
        workers: dataloader workers.
        seed: random seed.
        extra: further ultralytics train arguments (e.g. ``{"mosaic": 0.5}``).

    Returns:
        The best weights, written as ``out_dir/weights.safetensors``.

    Raises:
        ModelBundleError: training produced no weights, or ``arch`` is a pickle checkpoint.
    """
    if is_pickle_file(arch):
        raise pickle_refused(arch)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model_src = arch if arch.endswith(".yaml") else f"{arch}.yaml"
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
    args.update(extra or {})
    with ultralytics_session() as yolo_cls:
        model = yolo_cls(model_src, task="detect")
        model.train(**args)
        trainer = model.trainer
    best = Path(trainer.best) if trainer is not None else out / "run" / "weights" / "best.pt"
    if not best.is_file():
        best = out / "run" / "weights" / "last.pt"
    if not best.is_file():
        msg = f"training wrote no weights under {out / 'run'}"
        raise ModelBundleError(msg)
    target = out / WEIGHTS_FILE
    # the same restricted loader convert-weights uses: no full unpickling, even of our own run
    save_yolo_weights(load_checkpoint_model(best).float(), target)
    log.info("saved %s (from %s)", target, best)
    return target
