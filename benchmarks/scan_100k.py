"""A real-size scan: 100,000 x 100,000 px at 0.0862 um/px (8.6 mm square), screened end to end.

Writes a pyramidal BigTIFF (JPEG tiles of 512 px; levels 1, 4, 16, 64) of smear-coloured
background holding ``--fields`` real fields, each composed of 42 held-out Matek patches of the
default model (``wsi_screen/models/default/heldout_test.txt``, never trained on), then runs
``wsi-screen run`` on it in a child process and prints the wall time, the child's peak RSS, the
cells found (a detection within 8 um of a patch centre) and the report's stage timings.

    .venv/bin/python benchmarks/scan_100k.py --matek ../shared/data/matek_bm
    .venv/bin/python benchmarks/scan_100k.py --matek ../shared/data/matek_bm --keep /tmp/scan100k.tiff

``--keep PATH`` writes the scan there (or reuses it when it exists) instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from _synthetic import BACKGROUND  # noqa: E402
from _synthetic import compose_real_field  # noqa: E402

SIDE = 100_000
MPP = 0.0862
TILE = 512
DOWNSAMPLES = (1, 4, 16, 64)
ORIGINS = ((20_000, 18_000), (61_000, 29_000), (38_000, 60_000), (80_000, 79_000), (12_000, 84_000),
           (50_000, 8_000), (88_000, 45_000), (27_000, 40_000))  # fmt: skip


def compose_fields(matek: Path, n: int) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """``n`` real fields and the level-0 centres of their patches (placed at ``ORIGINS``)."""
    import cv2

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.training.overlap import heldout_files

    names = sorted(heldout_files(resolve_model("default"))[0] or ())  # never trained on
    rng = np.random.default_rng(0)
    fields, centres = [], []
    for k in range(n):
        pick = rng.choice(len(names), 42, replace=False)
        img, cs = compose_real_field([cv2.imread(str(matek / names[i]))[:, :, ::-1] for i in pick])
        fields.append(img)
        ox, oy = ORIGINS[k]
        centres += [(ox + x, oy + y) for x, y in cs]
    return fields, centres


def write_scan(path: Path, fields: list[np.ndarray]) -> None:
    """The pyramid, tile by tile: background tiles are one noisy array, field tiles are composed."""
    import cv2
    import tifffile

    rng = np.random.default_rng(1)
    noise = np.clip(np.asarray(BACKGROUND, np.float32) + rng.normal(0, 2.0, (TILE, TILE, 3)), 0, 255)
    background = noise.astype(np.uint8)

    def level_tiles(ds: int):
        side = -(-SIDE // ds)
        small = [
            cv2.resize(f, (f.shape[1] // ds, f.shape[0] // ds), interpolation=cv2.INTER_AREA) for f in fields
        ]
        boxes = [(ox // ds, oy // ds, s) for (ox, oy), s in zip(ORIGINS, small, strict=False)]
        for y in range(0, side, TILE):
            for x in range(0, side, TILE):
                hit = [b for b in boxes if b[0] < x + TILE and x < b[0] + b[2].shape[1] and b[1] < y + TILE and y < b[1] + b[2].shape[0]]  # fmt: skip
                if not hit:
                    yield background
                    continue
                tile = background.copy()
                for bx, by, img in hit:
                    x0, y0 = max(x, bx), max(y, by)
                    x1, y1 = min(x + TILE, bx + img.shape[1]), min(y + TILE, by + img.shape[0])
                    tile[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0 - by : y1 - by, x0 - bx : x1 - bx]
                yield tile

    px_per_cm = 1e4 / MPP
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, ds in enumerate(DOWNSAMPLES):
            side = -(-SIDE // ds)
            tif.write(
                level_tiles(ds),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                subifds=len(DOWNSAMPLES) - 1 if i == 0 else None,
                subfiletype=1 if i else 0,
                resolution=(px_per_cm / ds, px_per_cm / ds),
                resolutionunit="CENTIMETER",
            )


def found_fraction(cells_parquet: Path, centres: list[tuple[float, float]]) -> float:
    """Share of the patch centres with a detected cell within 8 um."""
    import polars as pl
    from scipy.spatial import cKDTree

    cells = pl.read_parquet(cells_parquet)
    if cells.height == 0:
        return 0.0
    tree = cKDTree(np.c_[cells["x"].to_numpy(), cells["y"].to_numpy()])
    dist, _ = tree.query(np.asarray(centres), k=1)
    return float(np.mean(dist <= 8.0 / MPP))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True, help="the Matek folder (../shared/data/matek_bm)")
    ap.add_argument("--fields", type=int, default=5, choices=range(1, len(ORIGINS) + 1))
    ap.add_argument("--keep", type=Path, default=None, help="write (or reuse) the scan here")
    ap.add_argument("--workers", type=int, default=-1, help="wsi-screen run --workers")
    a = ap.parse_args()
    fields, centres = compose_fields(a.matek, a.fields)
    with tempfile.TemporaryDirectory(prefix="scan100k-") as tmp:
        scan = a.keep or Path(tmp) / "scan.tiff"
        if not scan.exists():
            t = time.perf_counter()
            write_scan(scan, fields)
            print(f"wrote {scan} ({scan.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
        out = Path(tmp) / "out"
        cmd = [str(Path(sys.executable).with_name("wsi-screen")), "run", str(scan), "--output", str(out),
               "--workers", str(a.workers)]  # fmt: skip
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "MPLCONFIGDIR": tmp})
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rep = json.loads((out / scan.stem / "report.json").read_text())
        found = found_fraction(out / scan.stem / "cells.parquet", centres)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {' '.join(cmd[1:3])} ..."
    )
    print(f"scan {SIDE:,} x {SIDE:,} px at {MPP} um/px, {a.fields} real fields, {len(centres)} patches")
    print(f"wall {wall:.1f} s (model load included), peak RSS {peak:.0f} MB")
    print(
        f"cells detected {rep['cells_detected']}, counted {rep['cells_counted']}; patch centres found {100 * found:.1f} %"
    )
    print(
        "report stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in (rep.get("timings_s") or {}).items())
    )
    regions = (rep.get("qc") or {}).get("regions") or {}
    print(f"regions: {json.dumps({k: regions.get(k) for k in ('total', 'counted', 'excluded', 'reasons')})}")


if __name__ == "__main__":
    main()
