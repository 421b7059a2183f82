"""``wsi-screen evaluate``: metrics, plots and per-image predictions of a model on labelled data."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import output_option
from wsi_screen.cli.options import torch_device_option


@click.command(short_help="Per-class metrics and plots of a model on labelled data.")
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path, exists=True, file_okay=False))
@output_option("Folder for metrics.json, predictions.csv and the plots")
@click.option(
    "--scheme",
    default=None,
    help="Label mapping: a TOML file or shipped name (e.g. pbc_matek for the PBC set). "
    "Default: class folder names are the codes.",
)
@click.option(
    "--tolerance",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="TOML file of tolerated confusion pairs (default: DOMAIN pairs).",
)
@click.option(
    "--mpp",
    "mpp",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Microns per pixel of DATA: images are rescaled to the model's scale and "
    "centre-cropped. Without it, images of another size are resized whole.",
)
@click.option(
    "--only",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Evaluate only the files listed (paths relative to DATA, one per "
    "line, or a training split.json: its held-out test list).",
)
@click.option(
    "--blast-class",
    "blast",
    multiple=True,
    default=("BLA",),
    show_default=True,
    help="Class(es) whose summed probability is the blast score (repeatable).",
)
@torch_device_option
def evaluate(
    model: str,
    data: Path,
    out: Path,
    scheme: str | None,
    tolerance: Path | None,
    mpp: float | None,
    only: Path | None,
    blast: tuple[str, ...],
    device: str,
) -> None:
    """Evaluate MODEL (bundle folder or shipped name) on DATA (class folders) into -o.

    Writes metrics.json, predictions.csv, confusion_matrix.png, pr_curves.png and (when DATA
    holds blasts) blast_roc.png. Unreadable or truncated images are skipped, listed in
    metrics.json ('unreadable') and on stderr, and make the exit code 1; the metrics cover the
    other images. A model, scheme or data folder that cannot be used exits 2. When DATA is the
    data set the model was trained on, a warning says how many evaluated patches were in its
    training or validation split (metrics.json 'training_overlap'): evaluate its held-out share
    with --only.

    Example: wsi-screen evaluate default ../shared/data/pbc --scheme pbc_matek --mpp 0.2155 -o out
    """
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.evaluate import evaluate_bundle
    from wsi_screen.training.schemes import load_scheme
    from wsi_screen.training.schemes import load_tolerance

    written: list[Path] = []
    try:
        bundle = resolve_model(model)
        m = evaluate_bundle(
            bundle,
            data,
            out,
            scheme=load_scheme(scheme) if scheme else None,
            tolerance=load_tolerance(tolerance),
            mpp=mpp,
            only=only,
            blast_classes=blast,
            device=device,
            written=written,
        )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    macro = m.get("macro", {})
    overlap = m.get("training_overlap")
    if overlap:  # said first and on stderr: these are not held-out figures
        click.echo(f"WARNING: {overlap['message']}", err=True)
    click.echo(
        f"{m['n_evaluated']}/{m['n_images']} images of known classes; "
        f"accuracy {m.get('accuracy', float('nan')):.4f}, macro recall "
        f"{macro.get('recall', float('nan')):.4f}, macro F1 {macro.get('f1', float('nan')):.4f}"
    )
    cal = m.get("calibration") or {}
    if cal.get("ece_after") is not None:
        click.echo(
            f"ECE {cal['ece_after']:.4f} at temperature {cal['temperature']:.3f} "
            f"(ECE {cal['ece_before']:.4f} without it)"
        )
    for code, u in m.get("unknown_classes", {}).items():
        click.echo(f"  {code}: {u['n']} image(s) of a class the model does not have (not assessable)")
    for path in written:
        click.echo(f"wrote {path}")
    for bad in m.get("unreadable", []):
        click.echo(f"SKIPPED {bad['error']}", err=True)
    if m.get("unreadable"):
        click.echo(f"{len(m['unreadable'])} unreadable image(s) skipped", err=True)
        raise SystemExit(1)
