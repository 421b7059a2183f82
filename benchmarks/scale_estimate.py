"""Error of the pixel size estimated from red cells (``wsi_screen.scale_estimate``) on images of known scale.

Usage:
    nice -n 10 .venv/bin/python benchmarks/scale_estimate.py [--data ../shared/data] [--group 40]

Prints, one core (OpenCV's threads set to 1):
- synthetic fields (``tests/_synthetic_rbc.py``, red cells of 7.5 um median, touching cells,
  white cells, platelets) at 0.1, 0.25 and 0.5 um/px, three seeds each: the error, and the CPU
  seconds of one 2452 x 2056 field;
- PBC (``pbc/``, 256 px crops, ~0.099 um/px): all images shuffled into groups of ``--group``
  (and of 100), each group's cells pooled: the median and spread of the group estimates, their
  error against 0.099, and how many groups had too few cells;
- TXL-PBC's fields, per source (told apart by image size): PBC's 363 x 360 originals against
  0.099; the others, of unknown scale, by the measured diameter over the annotated red-cell boxes
  (boxes the border cuts left out);
- Matek marrow patches (``matek_bm/``, 250 px, 0.0862 um/px): how often a single patch or a pooled
  group gives no estimate, and the error when it gives one;
- the real tissue sections of ``slides/`` (not smears): whether anything is estimated at all.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _synthetic_rbc import red_cell_field  # noqa: E402

from wsi_screen.scale_estimate import RBC_DIAMETER_UM  # noqa: E402
from wsi_screen.scale_estimate import ScaleEstimate  # noqa: E402
from wsi_screen.scale_estimate import estimate_mpp  # noqa: E402
from wsi_screen.scale_estimate import red_cell_diameters  # noqa: E402
from wsi_screen.scale_estimate import summarise  # noqa: E402


def read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def group_rows(name: str, diameters: list[np.ndarray], size: int, truth: float) -> str:
    """One table row: groups of ``size`` images pooled, their estimates against ``truth``."""
    ests: list[ScaleEstimate | None] = [
        summarise(np.concatenate(diameters[i : i + size])) for i in range(0, len(diameters) - size + 1, size)
    ]
    got = [e.mpp for e in ests if e is not None]
    cells = [e.n_cells for e in ests if e is not None]
    if not got:
        return f"| {name} | {len(ests)} | {len(ests)} | - | - | - | - | - |"
    q = np.percentile(got, [5, 25, 50, 75, 95])
    med = float(q[2])
    worst = max(abs(g / truth - 1) for g in got)
    return (
        f"| {name} | {len(ests)} | {len(ests) - len(got)} | {statistics.median(cells):.0f} | "
        f"{med:.4f} ({pct(med / truth - 1)}) | {q[1]:.4f}-{q[3]:.4f} | {q[0]:.4f}-{q[4]:.4f} | {pct(worst)} |"
    )


def synthetic() -> None:
    print("\n## Synthetic fields (true median red-cell diameter 7.5 um)\n")
    print("| um/px | field | seed | estimate | error | cells | 95 % interval | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for mpp, n_rbc in ((0.1, 600), (0.25, 3000), (0.5, 8000)):
        for seed in (0, 1, 2):
            field = red_cell_field(2452, 2056, mpp=mpp, n_rbc=n_rbc, seed=seed)
            estimate_mpp(field)  # warm
            t = time.process_time()
            for _ in range(3):
                e = estimate_mpp(field)
            cpu = (time.process_time() - t) / 3
            if e is None:
                print(f"| {mpp} | 2452x2056 | {seed} | None | - | - | - | {cpu:.3f} |")
                continue
            print(
                f"| {mpp} | 2452x2056 | {seed} | {e.mpp:.4f} | {pct(e.mpp / mpp - 1)} | {e.n_cells} | "
                f"{e.mpp_low:.4f}-{e.mpp_high:.4f} | {cpu:.3f} |"
            )
    field = red_cell_field(2452, 2056, mpp=0.25, n_rbc=0, n_wbc=60, n_platelets=200, seed=0)
    print(f"\nwhite cells and platelets only (0.25 um/px): {estimate_mpp(field)}")


def pbc(root: Path, group: int) -> None:
    files = sorted(root.rglob("*.jpg"))
    random.Random(0).shuffle(files)
    t = time.process_time()
    diameters = [red_cell_diameters(read(f)) for f in files]
    cpu = time.process_time() - t
    n_cells = sum(d.size for d in diameters)
    print(f"\n## PBC crops ({len(files)} images, 256 px, truth ~0.099 um/px)\n")
    print(
        f"{n_cells} candidate cells, {n_cells / len(files):.2f} per image; {1000 * cpu / len(files):.1f} ms "
        "CPU per image (read + measure)"
    )
    all_d = summarise(np.concatenate(diameters))
    if all_d is not None:
        print(
            f"all images pooled: median diameter {all_d.diameter_px:.1f} px "
            f"(IQR {all_d.iqr_px[0]:.1f}-{all_d.iqr_px[1]:.1f}), {all_d.n_cells} cells -> {all_d.mpp:.4f} um/px "
            f"({pct(all_d.mpp / 0.099 - 1)}); red cells at 0.099 um/px measure {all_d.diameter_px * 0.099:.2f} um"
        )
    print(
        "\n| pooled | groups | no estimate | cells/group (median) | median estimate (error) | IQR | 5-95 % | worst error |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in sorted({group, 100}):
        print(group_rows(f"{size} images", diameters, size, 0.099))


def _whole(row: np.ndarray) -> bool:
    """A YOLO box (class cx cy w h, normalised) that the image's border does not cut."""
    _, cx, cy, bw, bh = row
    return bool(cx - bw / 2 > 0.005 and cy - bh / 2 > 0.005 and cx + bw / 2 < 0.995 and cy + bh / 2 < 0.995)


def txl(root: Path) -> None:
    print("\n## TXL-PBC fields, per source (told apart by size)\n")
    print(
        "| source (size) | images | cells/image | pooled diameter px | red-cell box side px (median) | "
        "diameter / box | pooled um/px | per 40 images: median, error vs 0.099, no estimate |"
    )
    print("|---|---|---|---|---|---|---|---|")
    by: dict[tuple[int, int], list[tuple[np.ndarray, list[float]]]] = defaultdict(list)
    for f in sorted(root.joinpath("images").rglob("*.jpg")):
        rgb = read(f)
        h, w = rgb.shape[:2]
        label = root / "labels" / f.parent.name / (f.stem + ".txt")
        rows = np.loadtxt(label, ndmin=2) if label.exists() and label.stat().st_size else np.zeros((0, 5))
        sides = [float(np.sqrt(r[3] * w * r[4] * h)) for r in rows if int(r[0]) == 1 and _whole(r)]
        by[(h, w)].append((red_cell_diameters(rgb), sides))
    names = {(363, 360): "PBC original", (480, 640): "BCCD", (575, 575): "575 px", (416, 416): "416 px"}
    for (h, w), items in sorted(by.items(), key=lambda kv: -len(kv[1])):
        diam = [d for d, _ in items]
        e = summarise(np.concatenate(diam))
        box = float(np.median([s for _, ss in items for s in ss] or [np.nan]))
        groups = ""
        if (h, w) == (363, 360):
            ests = [summarise(np.concatenate(diam[i : i + 40])) for i in range(0, len(diam) - 39, 40)]
            got = [x.mpp for x in ests if x is not None]
            if got:
                m = statistics.median(got)
                groups = f"{m:.4f}, {pct(m / 0.099 - 1)}, {len(ests) - len(got)} of {len(ests)}"
        name = f"{names.get((h, w), 'other')} ({w}x{h})"
        if e is None:
            print(
                f"| {name} | {len(items)} | {sum(d.size for d in diam) / len(items):.1f} | None | {box:.1f} | - | - | |"
            )
            continue
        print(
            f"| {name} | {len(items)} | {sum(d.size for d in diam) / len(items):.1f} | {e.diameter_px:.1f} | "
            f"{box:.1f} | {e.diameter_px / box:.3f} | {e.mpp:.4f} | {groups} |"
        )


def matek(root: Path, group: int) -> None:
    files = sorted(root.rglob("*.jpg"))
    random.Random(0).shuffle(files)
    diameters = [red_cell_diameters(read(f)) for f in files]
    singles = [summarise(d) for d in diameters]
    got = [e for e in singles if e is not None]
    print(f"\n## Matek marrow patches ({len(files)} images, 250 px, 0.0862 um/px)\n")
    print(
        f"single patches: no estimate for {len(files) - len(got)} of {len(files)}; "
        f"candidate cells {sum(d.size for d in diameters)} ({sum(d.size for d in diameters) / len(files):.3f} per patch)"
    )
    if got:
        print("errors of the single-patch estimates: " + ", ".join(pct(e.mpp / 0.0862 - 1) for e in got[:10]))
    print(
        "\n| pooled | groups | no estimate | cells/group | median estimate (error) | IQR | 5-95 % | worst error |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in sorted({group, 200, len(files)}):
        print(group_rows(f"{size} patches", diameters, size, 0.0862))


def slides(root: Path) -> None:
    import tiffslide

    print("\n## Tissue sections (slides/, not smears)\n")
    for f in sorted(root.glob("*.svs")):
        with tiffslide.TiffSlide(f) as s:
            w, h = s.dimensions
            rgb = np.asarray(s.read_region((0, 0), 0, (min(w, 2452), min(h, 2056))).convert("RGB"))
        print(f"{f.name}: {estimate_mpp(rgb)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--group", type=int, default=40)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    t0 = time.time()
    print(f"# Pixel size from red cells (reference diameter {RBC_DIAMETER_UM} um)")
    synthetic()
    for name in ("pbc", "txl_pbc", "matek_bm", "slides"):
        path = args.data / name
        if not path.exists():
            print(f"\n{path}: not found, skipped")
        elif name == "pbc":
            pbc(path, args.group)
        elif name == "matek_bm":
            matek(path, args.group)
        else:
            (txl if name == "txl_pbc" else slides)(path)
    print(f"\n{time.time() - t0:.0f} s wall in all")


if __name__ == "__main__":
    main()
