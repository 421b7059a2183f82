"""Compare detectors on one YOLO-format data set through the pipeline's tiling; print a table.

Runs ``wsi-screen evaluate-detector`` for each detector (same images, same scale assumption) and
prints a Markdown table of the figures in each ``metrics.json``. Used for docs/detectors.md:

    .venv/bin/python benchmarks/detector_compare.py ../shared/data/txl_pbc -o /tmp/det_compare \
        --classes WBC --field-um 33.6 yolo-wbc foreground
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import click


@click.command()
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@click.argument("detectors", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--classes", default="WBC", show_default=True)
@click.option("--field-um", type=float, default=None)
@click.option("--mpp", type=float, default=None)
@click.option("--limit", type=int, default=None)
def compare(
    data: Path,
    detectors: tuple[str, ...],
    out_dir: Path,
    classes: str,
    field_um: float | None,
    mpp: float | None,
    limit: int | None,
) -> None:
    """Evaluate DETECTORS on DATA and print one row per detector."""
    rows = []
    for det in detectors:
        out = out_dir / det.replace("/", "_")
        cmd = [
            str(Path(sys.executable).parent / "wsi-screen"),
            "evaluate-detector",
            det,
            str(data),
            "-o",
            str(out),
            "--classes",
            classes,
        ]
        if field_um:
            cmd += ["--field-um", str(field_um)]
        if mpp:
            cmd += ["--mpp", str(mpp)]
        if limit:
            cmd += ["--limit", str(limit)]
        subprocess.run(cmd, check=True)
        m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        c = m["counts"]
        rows.append(
            f"| {det} | {c['n_images']} | {c['n_gt']} | {c['n_pred']} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['f1']:.3f} | {m['map50']:.3f} | {m['centre']['precision']:.3f} | "
            f"{m['centre']['recall']:.3f} | {m['centre']['f1']:.3f} | {c['count_mae']:.3f} | "
            f"{c['exact_count_fraction']:.3f} | {m['seconds_per_image']:.3f} |"
        )
    header = (
        "| detector | images | cells (truth) | detections | P@IoU.5 | R@IoU.5 | F1@IoU.5 | mAP50 | "
        "P centre | R centre | F1 centre | count MAE/image | exact count | s/image |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    click.echo(header)
    for r in rows:
        click.echo(r)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    compare()
