"""The recipe of a classifier training run: its options, checks, input normalisation and resume rule.

The recipe is recorded in the bundle (``provenance.recipe``) and in every checkpoint; a resumed run
must share it with its checkpoint (:func:`check_same_recipe`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from wsi_screen.classifiers.architecture import check_architecture_name
from wsi_screen.classifiers.architecture import check_model_kwargs
from wsi_screen.classifiers.bundle import MATEK_MPP
from wsi_screen.errors import ConfigError
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.augment import AugmentConfig
from wsi_screen.training.pretrained import NAMED_SOURCES

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of a training run (recorded in the bundle).

    Attributes:
        arch: timm architecture name (always built with ``pretrained=False``).
        image_size: network input side; patches are resized from ``patch_size_px``.
        epochs: training epochs.
        batch_size: images per optimiser step.
        lr: peak AdamW learning rate (cosine decay after a linear warm-up).
        weight_decay: AdamW weight decay.
        warmup_epochs: epochs of linear warm-up.
        label_smoothing: cross-entropy label smoothing.
        balance: ``sampler`` (draw classes equally often), ``loss`` (class-weighted loss), ``none``.
        val_fraction: stratified validation share when ``folds`` is 1; 0 trains on everything
            outside the test share and keeps the last epoch (a final fit after the epoch count
            has been chosen on a validation split).
        test_fraction: stratified share held out from all training (listed in split.json).
        folds: k for stratified k-fold cross-validation (1 = single split).
        seed: seed of splits, sampling, augmentation and initialisation.
        interpolation: resize interpolation, as stored in the bundle.
        patch_size_px: side of the training patches at ``mpp``.
        mpp: microns per pixel of the training patches.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads (None: all available).
        init: local checkpoint (safetensors or torch state dict) or a named pretrained source
            (``imagenet:tf_efficientnet_lite0``) to start from; a named source's input
            normalisation is used for training and recorded in the bundle.
        ema_decay: decay of an exponential moving average of the weights (0 disables).
        preprocess: ``shah`` for NLM denoising + sharpening before resizing, or None.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``drop_rate``).
        augment: augmentation ranges.
        name: bundle name.
        bn_calibration: clean training images used to re-estimate BatchNorm statistics before
            every validation (0 disables).
        epoch_size: images drawn per epoch (0: as many as there are training images); sets the
            length of an epoch when several sources make the training set large.
    """

    arch: str = "resnet10t"
    image_size: int = 128
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    balance: str = "sampler"
    val_fraction: float = 0.15
    test_fraction: float = 0.0
    folds: int = 1
    seed: int = 0
    interpolation: str = "area"
    patch_size_px: int = 250
    mpp: float = MATEK_MPP
    device: str = "auto"
    threads: int | None = None
    init: str | None = None
    ema_decay: float = 0.0
    preprocess: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    name: str = ""
    bn_calibration: int = 1024
    epoch_size: int = 0

    def __post_init__(self) -> None:
        """Validate ranges."""
        checks = [
            (self.epochs >= 1, "epochs >= 1"),
            (self.batch_size >= 2, "batch_size >= 2"),
            (self.image_size >= 16, "image_size >= 16"),
            (0 <= self.val_fraction < 1, "0 <= val_fraction < 1"),
            (self.val_fraction > 0 or self.folds == 1, "val_fraction > 0 with folds > 1"),
            (0 <= self.test_fraction < 1, "0 <= test_fraction < 1"),
            (self.folds >= 1, "folds >= 1"),
            (self.balance in ("sampler", "loss", "none"), "balance in sampler, loss, none"),
            (0 <= self.ema_decay < 1, "0 <= ema_decay < 1"),
            (self.preprocess in (None, "shah"), "preprocess is None or shah"),
            (self.epoch_size == 0 or self.epoch_size >= self.batch_size, "epoch_size 0 or >= batch_size"),
        ]
        if self.init is not None and not isinstance(self.init, str):
            object.__setattr__(self, "init", str(self.init))
        src = NAMED_SOURCES.get(self.init or "")
        if src is not None and src.arch != self.arch:
            msg = f"--init {self.init} holds {src.arch} weights; use --arch {src.arch}"
            raise ConfigError(msg)
        for ok, rule in checks:
            if not ok:
                msg = f"train config: expected {rule}"
                raise ConfigError(msg)
        # the closed checks a bundle gets when it is loaded, before any data is read: a plain timm
        # name (no hf-hub: or other prefix timm would resolve over the network), drop-out rates only
        try:
            check_architecture_name(self.arch, "--arch")
            check_model_kwargs(self.model_kwargs, "--model-kwarg")
        except ModelBundleError as e:
            raise ConfigError(str(e)) from e

    def to_json(self) -> dict[str, Any]:
        """Return the recipe as a JSON-serialisable dict."""
        d = asdict(self)
        d["init"] = str(self.init) if self.init else None  # a Path given by older callers
        return d


_RUNTIME_ONLY = ("device", "threads")


def input_norm(cfg: TrainConfig) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Input normalisation: the named pretrained source's, else ImageNet's."""
    if cfg.init:
        src = NAMED_SOURCES.get(str(cfg.init))
        if src is not None:
            return src.mean, src.std
    return IMAGENET_MEAN, IMAGENET_STD


def resumable_recipe(cfg: TrainConfig) -> dict[str, Any]:
    """The recipe a resumed run must share with its checkpoint (all but device and threads)."""
    recipe = json.loads(json.dumps(cfg.to_json(), default=str))
    for key in _RUNTIME_ONLY:
        recipe.pop(key, None)
    return dict(recipe)


def check_same_recipe(ckpt_path: Path, saved: object, cfg: TrainConfig) -> None:
    """Refuse to resume a checkpoint under another recipe.

    The bundle would otherwise record a recipe that its first epochs were not trained with.

    Raises:
        ConfigError: naming the checkpoint and the options that differ.
    """
    if not isinstance(saved, str):
        log.warning("%s: checkpoint records no recipe (older wsi-screen); resuming as asked", ckpt_path)
        return
    before, now = json.loads(saved), resumable_recipe(cfg)
    changed = [
        f"{k} {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(before) | set(now))
        if before.get(k) != now.get(k)
    ]
    if changed:
        msg = (
            f"{ckpt_path}: cannot resume with another recipe ({'; '.join(changed)}); "
            "resume with the options of the interrupted run, or train into a new folder"
        )
        raise ConfigError(msg)
