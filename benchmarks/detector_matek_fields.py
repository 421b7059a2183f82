"""Cross-domain check: do the detectors find the centre cell of real bone-marrow patches?

TXL-PBC (blood smears) is the only data here with cell boxes. Bone-marrow fields with boxes are not
available, so this pastes real Matek 2021 patches (250 px, 0.0862 um/px, the cell in the centre) on
a 2452 x 2056 field grid (``tests/_synthetic.compose_real_field``) and measures, per class, the
fraction of patch-centre cells with a detection within ``--radius-um`` of the centre. Neighbour
cells at patch edges are unlabelled, so only recall is meaningful; detections per field are shown.

    .venv/bin/python benchmarks/detector_matek_fields.py ../shared/data/matek_bm --per-class 24
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _synthetic import compose_real_field  # noqa: E402

from wsi_screen.config import TilingConfig  # noqa: E402
from wsi_screen.detectors import create_detector  # noqa: E402
from wsi_screen.sources import FieldSource  # noqa: E402
from wsi_screen.stages import detect_cells  # noqa: E402

MPP = 0.0862
CELL_CLASSES = ("BLA", "EOS", "LYT", "MON", "NGS", "PMO")


@click.command()
@click.argument("matek", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--per-class", type=int, default=24, show_default=True)
@click.option("--radius-um", type=float, default=4.0, show_default=True)
@click.option("--detector", "detectors", multiple=True, default=("foreground", "yolo"))
@click.option(
    "--option",
    "options",
    multiple=True,
    help="KEY=VALUE detector option (float), e.g. work_mpp=0.25 (repeatable).",
)
def main(
    matek: Path, per_class: int, radius_um: float, detectors: tuple[str, ...], options: tuple[str, ...]
) -> None:
    """Report centre-cell recall per class for each detector on composed Matek fields."""
    opts = {k: float(v) for k, v in (o.split("=", 1) for o in options)}
    per_field = 42  # 7 x 6 grid of 300 px cells in a 2452 x 2056 field
    click.echo(
        f"| detector | class | patches | centre recall (<= {radius_um} um) | detections/field | s/field |"
    )
    click.echo("|---|---|---|---|---|---|")
    for name in detectors:
        det = create_detector(name, **(opts if name == "foreground" else {}))
        for cls in CELL_CLASSES:
            files = sorted((matek / cls).glob("*.jpg"))[:per_class]
            patches = [cv2.imread(str(f))[:, :, ::-1] for f in files]
            hits = n = n_det = n_fields = 0
            t = 0.0
            for start in range(0, len(patches), per_field):
                img, centres = compose_real_field(patches[start : start + per_field])
                src = FieldSource(np.ascontiguousarray(img), source_id=f"{cls}{start}", mpp=MPP)
                t0 = time.perf_counter()
                cells = detect_cells(src, det, TilingConfig(), mpp=MPP)
                t += time.perf_counter() - t0
                pts = np.array([(c.x, c.y) for c in cells]).reshape(-1, 2)
                for cx, cy in centres:
                    d = np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) if len(pts) else np.zeros(0)
                    hits += bool((d <= radius_um / MPP).any())
                n += len(centres)
                n_det += len(cells)
                n_fields += 1
            click.echo(
                f"| {name} | {cls} | {n} | {hits / max(n, 1):.3f} | "
                f"{n_det / max(n_fields, 1):.1f} | {t / max(n_fields, 1):.2f} |"
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
