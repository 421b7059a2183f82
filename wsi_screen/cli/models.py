"""``wsi-screen models``: list the shipped classifiers and cell detectors with their cards."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import CommandError


@click.command(short_help="List shipped models and detectors; print their cards.")
@click.option(
    "--card",
    "show_card",
    default=None,
    metavar="NAME",
    help="Print the full MODEL_CARD.md of this shipped model.",
)
def models(show_card: str | None) -> None:
    """List shipped models: name, architecture, classes, physical scale and model card."""
    from wsi_screen.classifiers import models_dir
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers import shipped_models
    from wsi_screen.errors import WsiScreenError

    if show_card:
        if (models_dir() / show_card / "detector.json").is_file():
            card = models_dir() / show_card / "MODEL_CARD.md"
        else:
            try:
                bundle = resolve_model(show_card)
            except WsiScreenError as e:
                detectors = sorted(p.parent.name for p in models_dir().glob("*/detector.json"))
                msg = f"{e}; shipped detectors: {', '.join(detectors) or 'none'}"
                raise click.BadParameter(msg, param_hint="--card") from e
            card = (bundle.path or models_dir() / show_card) / "MODEL_CARD.md"
        if not card.is_file():
            msg = f"{card}: model {show_card} has no MODEL_CARD.md"
            raise CommandError(msg)
        click.echo(card.read_text(encoding="utf-8"))
        return
    names = shipped_models()
    if not names:
        click.echo("no shipped classifiers")
    for name in names:
        try:
            b = resolve_model(name)
        except WsiScreenError as e:
            click.echo(f"{name}: invalid bundle ({e})")
            continue
        card = models_dir() / name / "MODEL_CARD.md"
        which = "heldout_test" if "heldout_test" in b.metrics else "validation"
        val = b.metrics.get(which, {})
        rec = val.get("macro_recall") if isinstance(val, dict) else None
        click.echo(
            f"{name}: {b.architecture}, input {b.input_size} px from "
            f"{b.patch_size_px} px at {b.mpp} um/px ({b.patch_size_um:.1f} um)"
        )
        click.echo(f"  classes ({len(b.class_names)}): {' '.join(b.class_names)}")
        if rec is not None:
            click.echo(f"  macro recall ({which.replace('_', ' ')}): {rec:.3f}")
        click.echo(f"  card: {card if card.is_file() else 'none'}")
    _list_detectors(models_dir())


def _list_detectors(root: Path) -> None:
    """Print the shipped YOLO detectors from their ``detector.json`` (ultralytics is not imported)."""
    from wsi_screen.detectors.yolo_folder import check_detector_json
    from wsi_screen.detectors.yolo_folder import read_detector_json
    from wsi_screen.errors import WsiScreenError

    folders = sorted(p for p in root.glob("*") if (p / "detector.json").is_file()) if root.is_dir() else []
    for folder in folders:
        try:
            cfg = read_detector_json(folder / "detector.json")  # bounded, checked
            check_detector_json(cfg, folder / "detector.json")
        except WsiScreenError as e:
            click.echo(f"{folder.name}: invalid detector.json ({e})")
            continue
        card = folder / "MODEL_CARD.md"
        click.echo(
            f"{folder.name} (detector, --detector yolo): {cfg.get('architecture', '?')}, "
            f"imgsz {cfg.get('imgsz', '?')} px at {cfg.get('mpp', '?')} um/px"
        )
        click.echo(f"  classes: {' '.join(cfg.get('class_names', []))}")
        click.echo(f"  card: {card if card.is_file() else 'none'}")
