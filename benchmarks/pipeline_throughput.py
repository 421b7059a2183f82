"""Throughput and peak memory of `wsi-screen run` stages on synthetic inputs.

Measures (1) a 2452 x 2056 reference field and (2) a large single-level tiled slide written tile by
tile (never held in memory), and prints seconds per stage, cells per second and peak RSS. Peak RSS
staying far below the slide's decoded size shows memory is bounded by tiles and batches.

The slide is screened in a child process, so the peak RSS printed is that of screening alone.

Usage:
    python benchmarks/pipeline_throughput.py [--model default] [--slide-side 16384] [--device cpu]
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _synthetic import grid_centres  # noqa: E402
from _synthetic import synthetic_field  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_big_slide(path: Path, side: int, mpp: float) -> int:
    """Tile a 2048 px synthetic block over side x side pixels; return the number of cells."""
    import tifffile

    block_px = 2048
    centres = grid_centres(block_px, block_px, 25 / mpp, margin=12 / mpp)
    block = synthetic_field(block_px, block_px, centres, mpp=mpp, n_rbc=200, seed=5)
    tile = 256

    def tiles():  # row-major tiles, each cut from the repeating block
        for y in range(0, side, tile):
            for x in range(0, side, tile):
                by, bx = y % block_px, x % block_px
                yield block[by : by + tile, bx : bx + tile]

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        px_per_cm = 1e4 / mpp
        tif.write(
            tiles(),
            shape=(side, side, 3),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            compression="zlib",
            resolution=(px_per_cm, px_per_cm),
            resolutionunit="CENTIMETER",
        )
    return len(centres) * (side // block_px) ** 2


def screen(paths: list[Path], out: Path, model: str, device: str) -> list:
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    screener, info = build_screener(model=model, device=device)
    return list(screen_to_folder(screener, info, paths, out))


def screen_slide_in_child(path: Path, out: Path, model: str, device: str) -> tuple[dict, float, float]:
    """Screen in a fresh process so its peak RSS is the screening's alone (no slide writing)."""
    t = time.perf_counter()
    (res,) = screen([path], out, model, device)
    return res.report, time.perf_counter() - t, peak_rss_mb()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--slide-side", type=int, default=16384)
    args = ap.parse_args()
    import cv2
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        centres = grid_centres(2452, 2056, 300)
        field = tmp / "field.png"
        cv2.imwrite(str(field), synthetic_field(2452, 2056, centres)[:, :, ::-1])
        screen([field], tmp / "warm", args.model, args.device)  # warm-up: model load, first batches
        t = time.perf_counter()
        (res,) = screen([field], tmp / "o1", args.model, args.device)
        dt = time.perf_counter() - t
        r = res.report
        print(
            f"field 2452x2056: {r['cells_detected']} cells, {dt:.2f} s wall incl. model load; stages {r['timings_s']}"
        )
        t = time.perf_counter()
        n = write_big_slide(tmp / "slide.tiff", args.slide_side, 0.25)
        print(
            f"slide {args.slide_side}x{args.slide_side} written in {time.perf_counter() - t:.1f} s "
            f"({args.slide_side**2 * 3 / 1e9:.2f} GB decoded, {n} cells drawn)"
        )
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            r, dt, rss = pool.submit(
                screen_slide_in_child, tmp / "slide.tiff", tmp / "o2", args.model, args.device
            ).result()
        print(
            f"slide: {r['cells_detected']} cells in {dt:.1f} s incl. model load = "
            f"{r['cells_detected'] / dt:.0f} cells/s; stages {r['timings_s']}"
        )
        print(f"peak RSS of the slide run (own process, model load included): {rss:.0f} MB")


if __name__ == "__main__":
    main()
