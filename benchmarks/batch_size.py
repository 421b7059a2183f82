"""Classifier throughput by batch size, with glibc's default malloc and with freed memory kept.

Usage:
    .venv/bin/python benchmarks/batch_size.py [--model default] [--batch 8 16 32 64 128] [--n 512]

For each malloc mode a child process loads the classifier (``TimmClassifier``, bf16 where the CPU
has it, BatchNorm folded, as ``wsi-screen run``) and times ``classify_arrays`` on ``--n`` random
250 px patches per batch size, after one warm-up pass. It prints patches/s, the kernel (system)
time and the minor page faults per patch: with glibc's defaults every large activation buffer is
a fresh ``mmap``, faulted in again on each forward pass; ``keep`` is
:func:`wsi_screen.device.keep_freed_memory`, what the classifier sets on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def _child(model: str, batches: list[int], n: int, keep: bool) -> None:
    import numpy as np

    import wsi_screen.classifiers.timm_classifier as tc
    from wsi_screen.classifiers import resolve_model

    if not keep:
        tc.keep_freed_memory = lambda: False  # glibc's defaults for this process
    clf = tc.TimmClassifier(resolve_model(model), device="cpu")
    patches = np.random.default_rng(0).integers(
        0, 255, (n, clf.patch_size_px, clf.patch_size_px, 3), np.uint8
    )
    rows = []
    for bs in batches:
        clf.batch_size = bs
        clf.classify_arrays(patches[: 2 * bs])  # warm
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        clf.classify_arrays(patches)
        dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"batch": bs, "per_s": n / dt, "sys_ms": (r1.ru_stime - r0.ru_stime) / n * 1e3,
                     "faults": (r1.ru_minflt - r0.ru_minflt) / n})  # fmt: skip
    print(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.model, args.batch, args.n, args.child == "keep")
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {args.model}; {args.n} patches"
    )
    print("malloc  | batch | patches/s | system ms/patch | page faults/patch")
    for mode in ("default", "keep"):
        cmd = [sys.executable, __file__, "--child", mode, "--model", args.model, "--n", str(args.n),
               "--batch", *map(str, args.batch)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        for r in json.loads(out.strip().splitlines()[-1]):
            print(
                f"{mode:7s} | {r['batch']:5d} | {r['per_s']:9.0f} | {r['sys_ms']:15.2f} | {r['faults']:17.0f}"
            )


if __name__ == "__main__":
    main()
