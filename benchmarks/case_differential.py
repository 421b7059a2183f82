"""Pooled differential of one case of held-out fields against the truth (issue 14): recall and MAE.

``--fields`` fields (2452 x 2056 PNG at 0.0862 um/px) composed of the default model's held-out
Matek patches (``wsi_screen/models/default/heldout_test.txt``; never trained on), 42 per field,
each patch used once, in a seeded random order, are screened as one case (``wsi-screen run
CASE_DIR``'s code: default model, foreground detector). Prints the case's field entries, cell
recall (patches with a detection within a quarter patch of their centre), and per counted class the
true and the reported share of counted cells, with the mean absolute error in percentage points.

    .venv/bin/python benchmarks/case_differential.py --matek ../shared/data/matek_bm
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True, help="the Matek bone-marrow folder")
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import cv2
    import polars as pl

    from wsi_screen.case_screen import screen_case
    from wsi_screen.cases import case_from_folder
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.config import AggregateConfig
    from wsi_screen.runner import build_screener
    from wsi_screen.training.blast_rates_fit import match_centres
    from wsi_screen.training.compose import PER_FIELD
    from wsi_screen.training.compose import compose_real_field
    from wsi_screen.training.overlap import heldout_files

    held = sorted(heldout_files(resolve_model("default"))[0] or ())  # never trained on
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(held))[: a.fields * PER_FIELD]
    excluded = set(AggregateConfig().excluded_classes)
    screener, info = build_screener(model="default", mpp=0.0862)
    with tempfile.TemporaryDirectory(prefix="case-diff-") as tmp:
        case = Path(tmp) / "case"
        case.mkdir()
        truth: list[str] = []
        centres: list[np.ndarray] = []
        for f in range(a.fields):
            names = [held[i] for i in order[f * PER_FIELD : (f + 1) * PER_FIELD]]
            patches = [cv2.imread(str(a.matek / n))[:, :, ::-1] for n in names]
            img, c = compose_real_field(patches)
            cv2.imwrite(str(case / f"field_{f:02d}.png"), img[:, :, ::-1])
            truth += [n.split("/")[0] for n in names]
            centres.append(np.asarray(c))
        res = screen_case(screener, info, case_from_folder(case), Path(tmp) / "out")
        rep = res.report
        assert rep is not None
        cells = pl.read_parquet(res.out_dir / "cells.parquet")
        found = 0
        for f, cen in enumerate(centres):
            sub = cells.filter(pl.col("field") == f"field_{f:02d}")
            xy = sub.select("x", "y").to_numpy().astype(np.float64)
            m = match_centres(xy, cen, 250 / 4)
            found += sum(j is not None for j in m)
    true_counted = Counter(t for t in truth if t not in excluded)
    n_true = sum(true_counted.values())
    print(f"fields in the case report: {len(rep['fields'])}; patches {len(truth)}, detected {found} "
          f"(cell recall {found / len(truth):.3f}); cells detected {rep['cells_detected']}, counted {rep['cells_counted']}")  # fmt: skip
    print("| class | true % of counted | reported % of counted | abs. error (pp) |")
    print("|---|---|---|---|")
    errs = []
    for c in sorted(set(true_counted) | set(rep["differential"])):
        t = 100 * true_counted.get(c, 0) / n_true
        r = (rep["differential"].get(c) or {}).get("percent") or 0.0
        errs.append(abs(t - r))
        print(f"| {c} | {t:.1f} | {r:.1f} | {abs(t - r):.1f} |")
    print(f"\nmean absolute error {np.mean(errs):.2f} pp over {len(errs)} classes")


if __name__ == "__main__":
    main()
