"""Train a timm patch classifier on a class-folder data set and write a model bundle.

Single-process and in-memory: patches are decoded once, resized to the network input exactly as
:class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier` does at inference, and augmented
batch-wise in torch. A checkpoint is written atomically after every epoch so an interrupted run
resumes where it stopped (``resume=True``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.errors import ConfigError
from wsi_screen.io import atomic_path
from wsi_screen.io import atomic_write_text
from wsi_screen.io import clean_temp_files
from wsi_screen.training.datasets import PatchSet
from wsi_screen.training.datasets import kfold_splits
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.datasets import stratified_split
from wsi_screen.training.manifest import relative_names
from wsi_screen.training.manifest import scan_data
from wsi_screen.training.pretrained import load_init_weights
from wsi_screen.training.pretrained import resolve_init
from wsi_screen.training.recipe import TrainConfig
from wsi_screen.training.recipe import check_same_recipe
from wsi_screen.training.recipe import input_norm
from wsi_screen.training.recipe import resumable_recipe
from wsi_screen.training.schemes import ClassScheme
from wsi_screen.training.train_utils import lr_at
from wsi_screen.training.train_utils import predict_logits
from wsi_screen.training.train_utils import quick_metrics
from wsi_screen.training.train_utils import recalibrate_batchnorm
from wsi_screen.training.train_utils import sample_epoch
from wsi_screen.training.train_utils import to_chw_tensor

__all__ = ["CHECKPOINT", "SPLIT_FILE", "TrainConfig", "train_model", "train_split"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
SPLIT_FILE = "split.json"


def train_split(
    train_set: PatchSet, val_set: PatchSet, out_dir: Path, cfg: TrainConfig, *, resume: bool = False
) -> tuple[ModelBundle, dict[str, Any]]:
    """Train on ``train_set``, select the epoch with the best validation macro recall, save a bundle.

    With an empty ``val_set`` nothing is validated and the last epoch is kept.

    Returns:
        The saved bundle and the training history (per-epoch loss and validation metrics).
    """
    import timm
    import torch

    from wsi_screen.device import autocast_dtype
    from wsi_screen.device import select_device
    from wsi_screen.device import set_threads
    from wsi_screen.training.augment import augment_batch

    out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device)
    if device.type == "cpu":
        set_threads(cfg.threads)
    dtype = autocast_dtype(device)
    n_classes = len(train_set.class_names)
    torch.manual_seed(cfg.seed)
    kw: dict[str, Any] = {
        "patch_size_px": cfg.patch_size_px,
        "input_size": cfg.image_size,
        "interpolation": cfg.interpolation,
        "preprocess": cfg.preprocess,
    }
    log.info("loading %d training and %d validation patches", len(train_set.items), len(val_set.items))
    x_train = to_chw_tensor(
        load_patches(train_set.paths, **kw, scales=train_set.scales, progress="loading training patches")
    )
    x_val = to_chw_tensor(
        load_patches(val_set.paths, **kw, scales=val_set.scales, progress="loading validation patches")
    )
    x_train = x_train.to(device)  # uint8 patches fit on a GPU; augmentation then runs there too
    y_train, y_val = train_set.labels, val_set.labels
    if len(np.unique(y_train)) < n_classes:
        missing = set(train_set.class_names) - {train_set.class_names[i] for i in y_train}
        msg = f"{train_set.root}: no training images for class(es) {', '.join(sorted(missing))}"
        raise ConfigError(msg)

    if cfg.arch not in timm.list_models():  # the name's form was checked by TrainConfig
        msg = f"--arch {cfg.arch!r}: not a timm architecture"
        raise ConfigError(msg)
    try:
        model = timm.create_model(cfg.arch, pretrained=False, num_classes=n_classes, **cfg.model_kwargs)
    except RuntimeError as e:
        msg = f"--arch {cfg.arch!r}: not a timm architecture ({e})"
        raise ConfigError(msg) from e
    init_spec = resolve_init(cfg.init) if cfg.init else None
    init_info = load_init_weights(model, init_spec) if init_spec else None
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = None
    if cfg.ema_decay > 0:
        from timm.utils import ModelEmaV3  # type: ignore[attr-defined]

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    counts = np.bincount(y_train, minlength=n_classes)
    class_w = None
    if cfg.balance == "loss":
        class_w = torch.tensor(len(y_train) / (n_classes * counts), dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_w, label_smoothing=cfg.label_smoothing)
    norm_mean, norm_std = input_norm(cfg)
    mean = torch.tensor(norm_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm_std, device=device).view(1, 3, 1, 1)
    src_names = sorted({it.source for it in train_set.items})
    src_train = (
        np.array([src_names.index(it.source) for it in train_set.items], dtype=np.int64)
        if len(src_names) > 1
        else None
    )
    steps_per_epoch = max(1, (cfg.epoch_size or len(y_train)) // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch * cfg.warmup_epochs

    # clean training images for re-estimating BatchNorm statistics before each validation
    calib = np.random.default_rng(cfg.seed).permutation(len(y_train))[: cfg.bn_calibration]
    x_calib = x_train[torch.from_numpy(np.sort(calib)).to(device)]
    start_epoch, history, best = 0, [], {"macro_recall": -1.0, "epoch": -1}
    ckpt_path = out_dir / CHECKPOINT
    best_path = out_dir / "best.safetensors"
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        check_same_recipe(ckpt_path, ck.get("recipe"), cfg)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None and "ema" in ck:
            ema.module.load_state_dict(ck["ema"])
        start_epoch, history, best = int(ck["epoch"]) + 1, json.loads(ck["history"]), json.loads(ck["best"])
        log.info("resumed %s at epoch %d/%d", ckpt_path, start_epoch + 1, cfg.epochs)
    elif resume:
        log.warning("%s: no checkpoint to resume from; starting fresh", ckpt_path)

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = sample_epoch(
            y_train, cfg.balance, rng, sources=src_train, size=steps_per_epoch * cfg.batch_size
        )
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
        for i in bar:
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total_steps, warmup, cfg.lr)
            idx = torch.from_numpy(order[i * cfg.batch_size : (i + 1) * cfg.batch_size])
            x = x_train[idx.to(device)].float().div_(255)
            x = augment_batch(x, cfg.augment, generator=gen)  # on the training device
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(y_train[idx.numpy()]).to(device)
            if dtype is not None:
                with torch.autocast(device_type=device.type, dtype=dtype):
                    loss = loss_fn(model(x).float(), y)
            else:
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model, step=step)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        eval_model = recalibrate_batchnorm(
            ema.module if ema is not None else model, x_calib, (mean, std), dtype=dtype
        )
        vm = (
            quick_metrics(y_val, predict_logits(eval_model, x_val, (mean, std), dtype=dtype), n_classes)
            if len(y_val)
            else {}
        )
        rec = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "seconds": round(time.perf_counter() - t0, 1),
            **vm,
        }
        history.append(rec)
        val_text = (
            f"val acc {vm['accuracy']:.4f} macro recall {vm['macro_recall']:.4f}" if vm else "no validation"
        )
        log.info(
            "epoch %d/%d loss %.4f %s (%.0f s)", epoch + 1, cfg.epochs, rec["loss"], val_text, rec["seconds"]
        )
        state = {k: v.detach().cpu().contiguous() for k, v in eval_model.state_dict().items()}
        if not vm or vm["macro_recall"] >= best["macro_recall"]:  # no validation: the last epoch
            best = {"epoch": epoch + 1, **vm}
            with atomic_path(best_path) as tmp:
                save_file(state, str(tmp))
        ck = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "history": json.dumps(history),
            "best": json.dumps(best),
            "recipe": json.dumps(resumable_recipe(cfg)),
        }
        if ema is not None:
            ck["ema"] = ema.module.state_dict()
        with atomic_path(ckpt_path) as tmp:
            torch.save(ck, tmp)

    from safetensors.torch import load_file

    eval_model = ema.module if ema is not None else model
    eval_model.load_state_dict(load_file(str(best_path)))
    eval_model.eval()
    bundle = ModelBundle(
        architecture=cfg.arch,
        class_names=train_set.class_names,
        input_size=cfg.image_size,
        mean=input_norm(cfg)[0],
        std=input_norm(cfg)[1],
        patch_size_px=cfg.patch_size_px,
        mpp=cfg.mpp,
        name=cfg.name or out_dir.name,
        interpolation=cfg.interpolation,
        preprocess=cfg.preprocess,
        model_kwargs=dict(cfg.model_kwargs),
        provenance={
            "recipe": cfg.to_json(),
            "data": {"train": train_set.summary(), "validation": val_set.summary()},
            "init": init_info,
            "versions": {"torch": torch.__version__, "timm": timm.__version__},
        },
        metrics={"validation": best if len(y_val) else None, "selected_epoch": best["epoch"]},
    )
    saved = bundle.save(out_dir, eval_model)
    atomic_write_text(out_dir / "history.json", json.dumps(history, indent=2) + "\n")
    return saved, {"history": history, "best": best}


def train_model(
    data: Path | str,
    out_dir: Path | str,
    cfg: TrainConfig,
    *,
    scheme: ClassScheme | None = None,
    resume: bool = False,
) -> ModelBundle:
    """Split ``data``, train (one split or k folds) and write the bundle to ``out_dir``.

    With ``test_fraction`` > 0 a stratified test share (seeded) is set aside first and listed in
    ``out_dir/split.json``; it is never trained on or used for model selection. With k folds each
    fold's bundle goes to ``out_dir/fold{i}``; the top-level bundle is the fold with the best
    validation macro recall and records mean and sd over folds.

    Example:
        >>> train_model("../shared/data/matek_bm", "runs/m", TrainConfig(epochs=1))  # doctest: +SKIP
    """
    data, out_dir = Path(data), Path(out_dir)
    ps, manifest = scan_data(data, cfg.mpp, scheme)
    labels = ps.labels
    if np.bincount(labels).min() < max(2, cfg.folds):
        msg = f"{data}: every class needs at least {max(2, cfg.folds)} images; got {ps.counts()}"
        raise ConfigError(msg)
    roots = {s.name: s.root for s in manifest.sources} if manifest else {"": data}
    names = relative_names(ps, manifest)

    # each source is split on its own, stratified by class: a source's split is the one it would
    # get alone (the Matek held-out share stays the default model's), and every (source, class)
    # keeps its proportions
    groups = [np.array([i for i, it in enumerate(ps.items) if it.source == name]) for name in roots]
    split: dict[str, Any] = {
        "seed": cfg.seed,
        "test_fraction": cfg.test_fraction,
        "rule": "sklearn train_test_split(stratify=labels, random_state=seed) over sorted file paths"
        + (", per source" if manifest else ""),
    }
    pool = np.arange(len(labels))
    if cfg.test_fraction > 0:
        parts = [stratified_split(labels[g], test_fraction=cfg.test_fraction, seed=cfg.seed) for g in groups]
        pool = np.sort(np.concatenate([g[a] for g, (a, _) in zip(groups, parts, strict=True)]))
        test = np.sort(np.concatenate([g[b] for g, (_, b) in zip(groups, parts, strict=True)]))
        split["test"] = [names[i] for i in test]
        if manifest:
            split["test_by_source"] = {
                name: [names[i] for i in test if ps.items[i].source == name] for name in roots
            }
    if cfg.folds > 1:
        strata = ps.strata
        pairs = [(pool[a], pool[b]) for a, b in kfold_splits(strata[pool], folds=cfg.folds, seed=cfg.seed)]
    elif cfg.val_fraction == 0:
        pairs = [(pool, pool[:0])]
    else:
        in_pool = [np.intersect1d(g, pool) for g in groups]
        vparts = [stratified_split(labels[g], test_fraction=cfg.val_fraction, seed=cfg.seed) for g in in_pool]
        tr = np.sort(np.concatenate([g[a] for g, (a, _) in zip(in_pool, vparts, strict=True)]))
        va = np.sort(np.concatenate([g[b] for g, (_, b) in zip(in_pool, vparts, strict=True)]))
        pairs = [(tr, va)]
    split["validation"] = [[names[i] for i in v] for _, v in pairs]
    if manifest:
        split["manifest"] = manifest.to_json()
    fold_cfgs = [replace(cfg, name=f"{cfg.name or out_dir.name}-fold{k + 1}") for k in range(len(pairs))]
    if resume:  # refuse a changed recipe before anything in out_dir is rewritten
        import torch

        runs = (
            [(out_dir, cfg)]
            if len(pairs) == 1
            else [(out_dir / f"fold{k + 1}", c) for k, c in enumerate(fold_cfgs)]
        )
        for folder, run_cfg in runs:
            if (folder / CHECKPOINT).is_file():
                ck = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
                check_same_recipe(folder / CHECKPOINT, ck.get("recipe"), run_cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_temp_files(out_dir, depth=2)  # a checkpoint half-written when a run was killed
    atomic_write_text(out_dir / SPLIT_FILE, json.dumps(split, indent=1) + "\n")
    if len(pairs) == 1:
        bundle, _ = train_split(ps.subset(pairs[0][0]), ps.subset(pairs[0][1]), out_dir, cfg, resume=resume)
        return _finish(bundle, out_dir, ps, split, None)
    results = []
    for k, (tr, va) in enumerate(pairs):
        log.info("fold %d/%d", k + 1, len(pairs))
        results.append(
            train_split(ps.subset(tr), ps.subset(va), out_dir / f"fold{k + 1}", fold_cfgs[k], resume=resume)
        )
    keys = ("accuracy", "macro_recall", "macro_f1")
    cv = {
        k: {
            "mean": float(np.mean([r[1]["best"][k] for r in results])),
            "sd": float(np.std([r[1]["best"][k] for r in results], ddof=1)),
        }
        for k in keys
    }
    best_k = int(np.argmax([r[1]["best"]["macro_recall"] for r in results]))
    src = results[best_k][0]
    model = src.create_model()
    bundle = replace(
        src,
        name=cfg.name or out_dir.name,
        metrics={**src.metrics, "cross_validation": cv, "selected_fold": best_k + 1},
    )
    saved = bundle.save(out_dir, model)
    return _finish(saved, out_dir, ps, split, cv)


def _finish(
    bundle: ModelBundle, out_dir: Path, ps: PatchSet, split: dict[str, Any], cv: dict[str, Any] | None
) -> ModelBundle:
    prov = dict(bundle.provenance)
    prov["data"] = {
        **prov.get("data", {}),
        "all": ps.summary(),
        "split": {k: v for k, v in split.items() if k not in ("test", "validation")},
        "n_test": len(split.get("test", [])),
    }
    model = bundle.create_model()
    metrics = dict(bundle.metrics)
    if cv is not None:
        metrics["cross_validation"] = cv
    return replace(bundle, provenance=prov, metrics=metrics).save(out_dir, model)
