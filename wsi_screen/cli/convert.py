"""``wsi-screen convert-weights``: turn an ultralytics ``.pt`` checkpoint into pickle-free weights."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import output_option


@click.command(
    "convert-weights", short_help="Convert an ultralytics .pt detector into pickle-free safetensors."
)
@click.argument("checkpoint", type=click.Path(path_type=Path, dir_okay=False))
@output_option("Model folder to write (weights.safetensors, detector.json)", dest="out_dir")
@click.option(
    "--mpp",
    type=click.FloatRange(min=0.001, max=100.0),
    default=None,
    help="Microns per pixel the detector was trained at (default: a detector.json beside CHECKPOINT).",
)
def convert_weights(checkpoint: Path, out_dir: Path, mpp: float | None) -> None:
    """Convert CHECKPOINT (an ultralytics .pt) into OUT/weights.safetensors + OUT/detector.json.

    The checkpoint is loaded once, with ultralytics' restricted loader (a checkpoint naming other
    code is refused), in a separate isolated process with a private working folder;
    the result holds only tensors and the architecture, so `--detector-weights OUT` never
    unpickles anything. Convert only files you trust.

    Example: wsi-screen convert-weights runs/det/best.pt -o models/my-detector
    """
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.weights_convert import convert_checkpoint

    try:
        target = convert_checkpoint(checkpoint, out_dir, mpp=mpp)
    except WsiScreenError as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"wrote {target}")
    click.echo(f"wrote {target.parent / 'detector.json'}")
