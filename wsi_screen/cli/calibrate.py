"""``wsi-screen calibrate``: fit a bundle's temperature, domain reference and blast rates on its validation split."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import torch_device_option


@click.command(short_help="Fit temperature scaling and the out-of-domain reference into a bundle.")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--scheme",
    default=None,
    help="Label mapping of training (TOML file or shipped name). Default: class folders are the codes.",
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=None, help="CPU threads (default: all cores)."
)
@click.option(
    "--fit",
    "what",
    type=click.Choice(["all", "calibration", "blast-rates"]),
    default="all",
    show_default=True,
    help="calibration: temperature and domain reference; blast-rates: the pipeline's measured blast "
    "confusion (validation patches composed into fields and screened), which the blast % is adjusted for.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Screening configuration (detector, counting classes) the blast rates are measured with.",
)
@torch_device_option
def calibrate(
    bundle: Path,
    data: Path,
    scheme: str | None,
    threads: int | None,
    what: str,
    config_path: Path | None,
    device: str,
) -> None:
    """Fit BUNDLE's temperature and domain reference on its validation split of DATA.

    DATA is the class-folder tree BUNDLE was trained on; the split is the one the bundle
    recorded (split.json or model.json), so no test image is used. The temperature and the
    reference are written into BUNDLE's model.json (atomically) and the weights are left
    untouched. Calibrated probabilities then feed the review queue, low-confidence QC and
    blast % by probability; the reference feeds each report's qc.domain.

    The blast rates (--fit blast-rates) are measured by pasting the validation patches of counted
    classes onto composed fields and screening them as `run` does (detector and counting classes
    from --config); each report then adjusts its blast % for them (aggregate.blast_adjustment).

    Example: wsi-screen calibrate runs/lite0 ../shared/data/matek_bm
    """
    from wsi_screen.config import ScreenConfig
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.blast_rates_fit import fit_blast_rates
    from wsi_screen.training.calibrate import calibrate_bundle
    from wsi_screen.training.schemes import load_scheme

    try:
        sch = load_scheme(scheme) if scheme else None
        if what in ("all", "calibration"):
            result = calibrate_bundle(bundle, data, scheme=sch, device=device, threads=threads)
            cal = result["calibration"]
            dom = result["domain"]["file"] if result["domain"] else "skipped"
            click.echo(
                f"temperature {cal['temperature']:.3f}: validation ECE {cal['ece_before']:.4f} -> "
                f"{cal['ece_after']:.4f} ({cal['n']} images); domain reference {dom}"
            )
            for note in result["skipped"]:
                click.echo(f"skipped: {note}", err=True)
        if what in ("all", "blast-rates"):
            rates, counts = fit_blast_rates(
                bundle, data, scheme=sch, config=ScreenConfig.from_file(config_path) if config_path else None
            )
            click.echo(
                f"blast rates: {rates.blasts_called_blast} of {rates.blasts} blasts called blast "
                f"(sensitivity {rates.sensitivity:.3f}), {rates.others_called_blast} of {rates.others} "
                f"other counted cells (false-blast rate {rates.false_blast_rate:.4f}); "
                f"{counts.unmatched} unmatched detections, {counts.missed} patches undetected"
            )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    click.echo(f"wrote {bundle / 'model.json'}")
