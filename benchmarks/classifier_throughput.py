"""Measure CPU (or GPU) inference throughput of a classifier bundle on 250 px patches.

Usage:
    python benchmarks/classifier_throughput.py [--model default] [--threads 2] [--batch 64]
        [--n 512] [--repeats 3] [--fp32] [--unfolded]

Patches are real Matek JPEGs from ../shared/data/matek_bm when present (decoding is not timed),
else random uint8 patches. The timed part is TimmClassifier.classify_arrays: resize 250 px ->
input size, normalise, forward, softmax, exactly what `wsi-screen run` does per batch.
Prints one line per setting with patches/s and ms/patch (best of --repeats).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from pathlib import Path

import numpy as np


def _patches(n: int, size: int) -> tuple[np.ndarray, str]:
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "matek_bm"
    files = sorted(data.rglob("*.jpg")) if data.is_dir() else []
    files = files[:: max(1, len(files) // n)][:n]
    if len(files) >= n:
        from wsi_screen.training.datasets import load_patches

        return load_patches(files, patch_size_px=size), f"{n} real Matek patches"
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8), f"{n} random patches"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[64])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp32", action="store_true", help="also time fp32 (no autocast)")
    ap.add_argument(
        "--unfolded", action="store_true", help="also time the network as trained (BatchNorm not folded)"
    )
    args = ap.parse_args()

    import torch

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    bundle = resolve_model(args.model)
    patches, what = _patches(args.n, bundle.patch_size_px)
    print(f"model {bundle.name} ({bundle.architecture}, input {bundle.input_size} px), {what}")
    print(
        f"cpu {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"torch {torch.__version__}, threads {args.threads}, load avg "
        f"{os.getloadavg()[0]:.2f}"
    )
    settings = [True, False] if args.fp32 else [True]
    folds = [True, False] if args.unfolded else [True]
    for fold, reduced, bs in itertools.product(folds, settings, args.batch):
        clf = TimmClassifier(
            bundle,
            device=args.device,
            batch_size=bs,
            threads=args.threads,
            reduced_precision=reduced,
            fold_bn=fold,
        )
        clf.classify_arrays(patches[:bs])  # warm-up (oneDNN kernel selection)
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            clf.classify_arrays(patches)
            best = min(best, time.perf_counter() - t0)
        prec = "fp32" if clf.dtype is None else str(clf.dtype).removeprefix("torch.")
        net = "folded" if fold else "unfolded"
        print(
            f"  {prec:8s} {net:8s} batch {bs:4d}: {len(patches) / best:8.1f} patches/s "
            f"({1000 * best / len(patches):.2f} ms/patch)"
        )


if __name__ == "__main__":
    main()
