"""Building blocks of training: init weights, sampling, schedule, prediction, BatchNorm.

Also quick validation metrics; used by :mod:`wsi_screen.training.train`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def sample_epoch(
    labels: np.ndarray,
    balance: str,
    rng: np.random.Generator,
    *,
    sources: np.ndarray | None = None,
    size: int | None = None,
) -> np.ndarray:
    """Indices for one epoch of ``size`` draws (default: one per image).

    ``balance="sampler"`` draws classes equally often, with replacement; with ``sources`` (one
    integer per image) each class's draws are further split equally over the sources that hold
    the class, so a lab with more images of a class does not dominate it. Otherwise a
    permutation (repeated when ``size`` exceeds the images).
    """
    n = len(labels)
    size = n if size is None else size
    if balance != "sampler":
        reps = -(-size // n)
        return np.concatenate([rng.permutation(n) for _ in range(reps)])[:size]
    counts = np.bincount(labels)
    if sources is None:
        w = 1.0 / counts[labels]
    else:
        pair = labels.astype(np.int64) * (int(sources.max()) + 1) + sources
        _, inverse, pair_counts = np.unique(pair, return_inverse=True, return_counts=True)
        n_src = np.array([len(np.unique(sources[labels == c])) for c in range(len(counts))])
        w = 1.0 / (pair_counts[inverse] * n_src[labels])
    return rng.choice(n, size=size, replace=True, p=w / w.sum())


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor],
    *,
    dtype: torch.dtype | None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Logits (float32) of uint8 NCHW images on the model's device, without augmentation."""
    import torch

    mean, std = norm
    out = []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = images[s : s + batch_size].to(mean.device).float().div_(255)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            if dtype is not None:
                with torch.autocast(device_type=mean.device.type, dtype=dtype):
                    out.append(model(x).float())
            else:
                out.append(model(x).float())
    return torch.cat(out).cpu()


def recalibrate_batchnorm(
    model: torch.nn.Module,
    images: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor],
    *,
    dtype: torch.dtype | None,
    batch_size: int = 64,
) -> torch.nn.Module:
    """Return a copy of ``model`` whose BatchNorm statistics are re-estimated on clean images.

    Running statistics collected on augmented batches (resampled, colour-jittered) differ from
    those of un-augmented patches enough to halve the accuracy of a small network trained from
    scratch; re-estimating them on un-augmented training images ("precise BN") removes that gap.
    Models without BatchNorm are returned unchanged (as a copy).
    """
    import copy

    import torch

    model = copy.deepcopy(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or len(images) == 0:
        return model
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
    mean, std = norm
    model.train()
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = images[s : s + batch_size].to(mean.device).float().div_(255)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            if dtype is not None:
                with torch.autocast(device_type=mean.device.type, dtype=dtype):
                    model(x)
            else:
                model(x)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()
    return model


def quick_metrics(y: np.ndarray, logits: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Accuracy, macro recall and macro F1 of logits against integer labels."""
    from sklearn.metrics import accuracy_score
    from sklearn.metrics import f1_score
    from sklearn.metrics import recall_score

    pred = logits.argmax(1).numpy()
    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_recall": float(recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
    }


def to_chw_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 NxHxWx3 array -> uint8 Nx3xHxW tensor."""
    import torch

    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
