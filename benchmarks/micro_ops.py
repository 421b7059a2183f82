"""Small operations the field pipeline's speed-ups rest on, timed against what they replaced.

Usage:
    .venv/bin/python benchmarks/micro_ops.py [--dirs /tmp /var/tmp .] [--files 300]

Prints, on this machine:
- the time to create one small file (3 kB) in each of ``--dirs`` (the viewer wrote 137 tiles
  per field; it now writes 24);
- the RGB-to-BGR swap of a 2452 x 2056 field before JPEG encoding: NumPy's
  ``ascontiguousarray(rgb[:, :, ::-1])`` against ``cv2.cvtColor`` (``wsi_screen.jpeg``);
- the glass colour's 99.5th percentile of a 1024 x 860 thumbnail: ``np.percentile`` against
  ``wsi_screen.histogram.channel_percentiles`` (the same values, checked);
- reading the package versions report.json records, uncached (``importlib.metadata``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _ms(fn: Callable[[], object], n: int = 20) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dirs", type=Path, nargs="+", default=[Path("/tmp"), Path("/var/tmp"), Path()])
    ap.add_argument("--files", type=int, default=300)
    args = ap.parse_args()
    from wsi_screen.histogram import channel_percentiles
    from wsi_screen.jpeg import rgb_to_bgr
    from wsi_screen.reports.json_report import _installed_versions

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    for d in args.dirs:
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            t = time.perf_counter()
            for i in range(args.files):
                (Path(tmp) / f"{i}.jpeg").write_bytes(b"x" * 3000)
            per = (time.perf_counter() - t) / args.files * 1e3
        print(f"create a 3 kB file in {d.resolve()}: {per:.3f} ms")
    rng = np.random.default_rng(0)
    field = rng.integers(0, 256, (2056, 2452, 3), np.uint8)
    print(f"RGB->BGR of a 2452 x 2056 field: ascontiguousarray {_ms(lambda: np.ascontiguousarray(field[:, :, ::-1])):.2f} ms, "
          f"cv2.cvtColor {_ms(lambda: rgb_to_bgr(field)):.2f} ms")  # fmt: skip
    thumb = np.clip(rng.normal(200, 30, (860, 1024, 3)), 0, 255).astype(np.uint8)
    flat = thumb.reshape(-1, 3)
    assert np.array_equal(channel_percentiles(thumb, 99.5), np.percentile(flat, 99.5, axis=0))
    print(f"99.5th percentile per channel of a 1024 x 860 thumbnail: np.percentile "
          f"{_ms(lambda: np.percentile(flat.astype(np.float32), 99.5, axis=0)):.2f} ms, "
          f"histograms {_ms(lambda: channel_percentiles(thumb, 99.5)):.2f} ms (same values)")  # fmt: skip
    print(f"package versions for report.json, uncached: {_ms(_installed_versions.__wrapped__, 5):.2f} ms")


if __name__ == "__main__":
    main()
