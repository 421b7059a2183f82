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


def _initialised(yolo_cls: Any, init: str | Path) -> Any:  # noqa: ANN401
    """A ``YOLO`` holding the network of ``init`` (safetensors), which training starts from.

    ultralytics copies a loaded model's tensors into the network it trains (``get_model(weights=
    ...)``) only when the model came from a checkpoint (``ckpt`` set); the built network is
    marked so, with nothing unpickled.
    """
    from wsi_screen.detectors.yolo import resolve_model_dir
    from wsi_screen.detectors.yolo_weights import as_yolo
    from wsi_screen.detectors.yolo_weights import build_detection_model
    from wsi_screen.detectors.yolo_weights import read_yolo_weights

    path, _ = resolve_model_dir(init)
    net = build_detection_model(read_yolo_weights(path))
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
    model = as_yolo(yolo_cls, net, "init")
    model.ckpt = {"init": str(path)}
    log.info("fine-tuning from %s", path)
    return model


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
        arch: an ultralytics architecture name (``yolo11n``, ``yolov8n``, ...) or a ``.yaml``
            file; names are built from their yaml, so nothing is downloaded. A ``.pt`` checkpoint
            is refused (it would be unpickled).
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
    if init is not None:
        # ultralytics warms biases up from lr 0.1, which would throw a trained head away
        args["warmup_bias_lr"] = 0.0
    args.update(extra or {})
    with ultralytics_session() as yolo_cls:
        if init is None:
            model = yolo_cls(model_src, task="detect")
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
    target = out / WEIGHTS_FILE
    # the same restricted loader convert-weights uses: no full unpickling, even of our own run
    save_yolo_weights(load_checkpoint_model(best).float(), target)
    log.info("saved %s (from %s)", target, best)
    return target
