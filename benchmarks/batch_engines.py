"""Time ``wsi-screen batch`` with the local and the Ray engine on synthetic fields.

Usage:
    python benchmarks/batch_engines.py --model default --n 40 --size 2452x2056 --workers 2
    python benchmarks/batch_engines.py --model BUNDLE_DIR --device cuda --engines local ray

Prints seconds, inputs/s and cells/s per engine, and whether the summaries (without timings)
are identical. Everything is written to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _synthetic import grid_centres  # noqa: E402
from _synthetic import synthetic_field  # noqa: E402

from wsi_screen.batch import BatchOptions  # noqa: E402
from wsi_screen.batch import run_batch  # noqa: E402
from wsi_screen.batch.summary import TIMING_COLUMNS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--n", type=int, default=20, help="number of synthetic fields")
    ap.add_argument("--size", default="1200x1000", help="field size WxH in pixels")
    ap.add_argument("--workers", type=int, default=None, help="Ray workers")
    ap.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="wsi-batch-bench-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.n):
            img = synthetic_field(w, h, grid_centres(w, h, 290), seed=i)
            cv2.imwrite(str(folder / f"field_{i:04d}.png"), img[:, :, ::-1])
        kwargs = {"model": args.model, "device": args.device, "batch_size": args.batch_size, "mpp": 0.0862}
        summaries = {}
        for engine in args.engines:
            out = Path(tmp) / f"out_{engine}"
            opts = BatchOptions(engine=engine, workers=args.workers, resume=False)
            t = time.perf_counter()
            result = run_batch([folder], out, options=opts, screener_kwargs=kwargs)
            sec = time.perf_counter() - t
            cells = sum(r["cells_detected"] or 0 for r in result.rows)
            devices = ",".join(result.metadata.get("engine", {}).get("devices", []))
            print(
                f"{engine:5} n={args.n} {w}x{h} workers={result.metadata['engine'].get('workers')} "
                f"devices={devices}: {sec:.1f} s, {args.n / sec:.2f} inputs/s, {cells / sec:.0f} cells/s"
            )
            summaries[engine] = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in result.rows]
        if len(summaries) == 2:
            print("summaries identical:", summaries["local"] == summaries["ray"])


if __name__ == "__main__":
    main()
