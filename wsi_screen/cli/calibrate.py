"""``wsi-screen calibrate``: fit a bundle's temperature and domain reference on its validation split."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import torch_device_option


@click.command(short_help="Fit temperature scaling and the out-of-domain reference into a bundle.")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("data", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--scheme",
    default=None,
    help="Label mapping of training (TOML file or shipped name). Default: class folders are the codes.",
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=None, help="CPU threads (default: all cores)."
)
@torch_device_option
def calibrate(bundle: Path, data: Path, scheme: str | None, threads: int | None, device: str) -> None:
    """Fit BUNDLE's temperature and domain reference on its validation split of DATA.

    DATA is the class-folder tree BUNDLE was trained on; the split is the one the bundle
    recorded (split.json or model.json), so no test image is used. The temperature and the
    reference are written into BUNDLE's model.json (atomically) and the weights are left
    untouched. Calibrated probabilities then feed the review queue, low-confidence QC and
    blast % by probability; the reference feeds each report's qc.domain.

    Example: wsi-screen calibrate runs/lite0 ../shared/data/matek_bm
    """
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.calibrate import calibrate_bundle
    from wsi_screen.training.schemes import load_scheme

    try:
        result = calibrate_bundle(
            bundle,
            data,
            scheme=load_scheme(scheme) if scheme else None,
            device=device,
            threads=threads,
        )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    cal = result["calibration"]
    click.echo(
        f"temperature {cal['temperature']:.3f}: validation ECE {cal['ece_before']:.4f} -> "
        f"{cal['ece_after']:.4f} ({cal['n']} images); domain reference {result['domain']['file']}"
    )
    click.echo(f"wrote {bundle / 'model.json'}")
