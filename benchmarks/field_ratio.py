"""Marginal pipeline time per field against the work no pipeline can skip (decode + raw model).

Screens FIELDS (repeated to ``--n`` inputs) with ``wsi-screen run``'s screener and report writer,
warm (one field first, not timed), and compares the seconds per field with the sum of decoding
the image (Pillow, as the reader does) and the classifier's raw forward pass over as many patches
as the field has cells. The ratio (raw / pipeline) is 1.0 for a pipeline that adds nothing.

Two figures per field: the mean over one run of ``--n`` fields, which includes filling the
pipeline (the first field is read before the model can start) and draining it (the last reports
are written after the model is done), and the marginal time, ``(T(2n) - T(n)) / n`` from a second
run of ``2n`` fields: what one more field costs once the stages overlap (issue 15's measure).

    .venv/bin/python benchmarks/field_ratio.py examples/case_matek/*.jpg --n 8
    .venv/bin/python benchmarks/field_ratio.py --compose ../shared/data/matek_bm --n 8

``--compose MATEK`` first writes 8 reference-size fields (2452 x 2056 PNG, 42 real held-out
patches of the default model each, on smear-coloured background) and screens those.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does: idle model threads sleep


def _compose(matek: Path | None, tmp: Path, n: int) -> list[Path]:
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _synthetic import compose_real_field

    if matek is None:
        msg = "give FIELDS or --compose MATEK"
        raise SystemExit(msg)
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.training.overlap import heldout_files

    names = sorted(heldout_files(resolve_model("default"))[0] or ())  # never trained on
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        pick = rng.choice(len(names), 42, replace=False)
        patches = [cv2.imread(str(matek / names[i]))[:, :, ::-1] for i in pick]
        img, _ = compose_real_field(patches)
        path = tmp / f"field_{k:02d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fields", nargs="*", type=Path)
    ap.add_argument(
        "--compose", type=Path, default=None, help="Matek folder: compose fields from held-out patches"
    )
    ap.add_argument("--n", type=int, default=8, help="inputs screened (fields repeated)")
    ap.add_argument("--repeats", type=int, default=3, help="timed pairs of runs (n, then 2n fields)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--backend", default="torch", choices=["torch", "onnx", "openvino"], help="classify.backend"
    )
    ap.add_argument("--workers", type=int, default=-1, help="[pipeline] workers (0: read on the main thread)")
    ap.add_argument("--read-ahead", type=int, default=2, help="[pipeline] read_ahead")
    ap.add_argument("--write-behind", type=int, default=2, help="[pipeline] write_behind (0: write inline)")
    ap.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="[pipeline] worker_nice (0: stage threads at the model's priority)",
    )
    args = ap.parse_args()

    from PIL import Image

    from wsi_screen.config import ScreenConfig
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    cfg = ScreenConfig().replace(
        "pipeline",
        workers=args.workers,
        read_ahead=args.read_ahead,
        write_behind=args.write_behind,
        worker_nice=args.worker_nice,
    )
    screener, info = build_screener(model=args.model, device=args.device, config=cfg, backend=args.backend)
    stage_sum: dict[str, float] = {}
    clf = screener.classifier
    with tempfile.TemporaryDirectory() as tmp:
        given = list(args.fields) or _compose(args.compose, Path(tmp), args.n)
        fields = [given[i % len(given)] for i in range(args.n)]
        list(screen_to_folder(screener, info, [fields[0]], Path(tmp) / "warm"))
        decode = []
        for f in fields:
            t = time.perf_counter()
            with Image.open(f) as im:
                im.load()
                np.asarray(im)
            decode.append(time.perf_counter() - t)
        means, marginals, raws, cpu_user, cpu_sys = [], [], [], [], []
        outcomes: list = []
        patches = None
        for rep in range(args.repeats):
            out = Path(tmp) / f"out{rep}"
            t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            outcomes = list(screen_to_folder(screener, info, fields, out / "n"))
            t_n, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            cpu_user.append((r1.ru_utime - r0.ru_utime) / len(fields))
            cpu_sys.append((r1.ru_stime - r0.ru_stime) / len(fields))
            t0 = time.perf_counter()
            list(screen_to_folder(screener, info, fields + fields, out / "2n"))
            marginals.append((time.perf_counter() - t0 - t_n) / len(fields))
            means.append(t_n / len(fields))
            shutil.rmtree(out)
            if patches is None:
                cells = [
                    len((o.report or {}).get("cells", []))
                    or (o.report or {}).get("qc", {}).get("cells_detected", 0)
                    for o in outcomes
                ]
                n_cells = int(round(statistics.mean(cells)))
                patches = np.random.default_rng(0).integers(
                    0, 255, (max(n_cells, 1), clf.patch_size_px, clf.patch_size_px, 3), np.uint8
                )
                clf.classify_arrays(patches)  # warm
            t = time.perf_counter()
            for _ in range(5):
                clf.classify_arrays(patches)
            raws.append((time.perf_counter() - t) / 5)
    for o in outcomes:
        for k, v in ((o.report or {}).get("timings_s") or {}).items():
            stage_sum[k] = stage_sum.get(k, 0.0) + v
    dec = statistics.mean(decode)
    ratios = sorted((dec + r) / m for r, m in zip(raws, marginals, strict=True))
    mean_ratios = sorted((dec + r) / m for r, m in zip(raws, means, strict=True))
    raw = statistics.median(raws)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {args.model}; device {args.device}; backend {args.backend}"
    )
    pipe = screener.cfg.pipeline
    print(
        f"{len(fields)} fields, {n_cells} cells per field on average (foreground detector); "
        f"pipeline workers {pipe.resolved_workers()}, read_ahead {pipe.read_ahead}, write_behind {pipe.write_behind}; "
        f"{args.repeats} repeats (median, range)"
    )
    print(
        f"pipeline: {statistics.median(means):.3f} s per field ({min(means):.3f}-{max(means):.3f}; "
        f"warm, reports written; one run of {len(fields)}, fill and drain included)"
    )
    print(
        f"marginal: {statistics.median(marginals):.3f} s per field ({min(marginals):.3f}-{max(marginals):.3f}; "
        f"(T({2 * len(fields)}) - T({len(fields)})) / {len(fields)})"
    )
    print(
        f"decode {dec:.3f} s + raw model {raw:.3f} s ({n_cells / raw:.0f} patches/s, "
        f"batch {clf.batch_size}) = {dec + raw:.3f} s"
    )
    print(
        f"ratio (decode + raw model) / marginal: {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}); "
        f"per-field mean: {statistics.median(mean_ratios):.2f} ({mean_ratios[0]:.2f}-{mean_ratios[-1]:.2f})"
    )
    print(
        f"CPU time per field (median over the runs of {len(fields)}, all threads): "
        f"user {statistics.median(cpu_user):.3f} s, kernel {statistics.median(cpu_sys):.3f} s"
    )
    print(
        "mean seconds per field by stage (last run of n): "
        + ", ".join(f"{k} {v / len(fields):.3f}" for k, v in stage_sum.items())
    )


if __name__ == "__main__":
    sys.exit(main())
