"""Blast cut-off decisions on simulated cases of known blast share, screened end to end as cases.

Each case is ``--fields`` fields (2452 x 2056 PNG at 0.0862 um/px) composed of real held-out Matek
patches of the default model (never trained on: ``wsi_screen/models/default/heldout_test.txt``),
42 per field: blasts (BLA) at the case's share of the counted cells, the rest drawn from the other
counted classes of the held-out set (NGS, LYT, MON, EOS, PMO). Patches are reused across cases
(648 held-out patches for about 3,400 slots), each time flipped or rotated at random. The case is
screened with ``wsi-screen run CASE_DIR``'s code (default model, foreground detector) and each of
its blast flags is compared with the truth (share >= cut-off). Prints one row per case and the
totals: decided flags, wrong decided flags.

    .venv/bin/python benchmarks/case_decisions.py --matek ../shared/data/matek_bm
    .venv/bin/python benchmarks/case_decisions.py --matek ../shared/data/matek_bm --fields 10 --shares 1 3 7 12 15 25 30 35
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OTHERS = ("NGS", "LYT", "MON", "EOS", "PMO")
PER_FIELD = 42


def compose_case(folder: Path, matek: Path, share: float, n_fields: int, rng: np.random.Generator) -> int:
    """Write the fields of one case into ``folder``; return its number of blasts."""
    import cv2

    sys.path.insert(0, str(REPO / "tests"))
    from _synthetic import compose_real_field

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.training.overlap import heldout_files

    held = sorted(heldout_files(resolve_model("default"))[0] or ())  # never trained on
    blasts = [p for p in held if p.startswith("BLA/")]
    others = [p for p in held if p.split("/")[0] in OTHERS]
    n = n_fields * PER_FIELD
    k = round(share / 100 * n)
    names = [blasts[i] for i in rng.integers(0, len(blasts), k)] + [
        others[i] for i in rng.integers(0, len(others), n - k)
    ]
    rng.shuffle(names)
    folder.mkdir(parents=True)
    for f in range(n_fields):
        patches = []
        for name in names[f * PER_FIELD : (f + 1) * PER_FIELD]:
            img = cv2.imread(str(matek / name))[:, :, ::-1]
            img = np.rot90(img, int(rng.integers(0, 4)))
            patches.append(np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img))
        field, _ = compose_real_field(patches)
        cv2.imwrite(str(folder / f"field_{f:02d}.png"), field[:, :, ::-1])
    return k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--matek", type=Path, required=True, help="the Matek bone-marrow folder (../shared/data/matek_bm)"
    )
    ap.add_argument("--fields", type=int, default=10)
    ap.add_argument("--shares", type=float, nargs="+", default=[1, 3, 7, 12, 15, 25, 30, 35])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="default", help="model bundle folder or shipped name")
    ap.add_argument(
        "--adjustment", choices=["model", "none"], default="model", help="aggregate.blast_adjustment"
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import dataclasses

    from wsi_screen.case_screen import screen_case
    from wsi_screen.cases import case_from_folder
    from wsi_screen.config import ScreenConfig
    from wsi_screen.runner import build_screener

    base = ScreenConfig()
    cfg = dataclasses.replace(
        base, aggregate=dataclasses.replace(base.aggregate, blast_adjustment=a.adjustment)
    )
    screener, info = build_screener(model=a.model, mpp=0.0862, config=cfg)
    rng = np.random.default_rng(a.seed)
    decided = wrong = total = 0
    print(
        "| true blast % | fields | patches | cells detected | counted | called blast % (95 % CI) "
        "| adjusted % (95 % CI) | >=5 % | >=10 % | >=20 % | wrong |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="case-decisions-") as tmp:
        for j, share in enumerate(a.shares):
            folder = Path(tmp) / f"case_{j}"
            compose_case(folder, a.matek, share, a.fields, rng)
            rep = screen_case(screener, info, case_from_folder(folder), Path(tmp) / "out").report
            assert rep is not None
            cells = []
            bad = 0
            for cut in (5, 10, 20):
                f = next(x for x in rep["flags"] if x["name"] == f"blasts_ge_{cut}pct")
                truth = "raised" if share >= cut else "not_raised"
                total += 1
                if f["status"] in ("raised", "not_raised"):
                    decided += 1
                    if f["status"] != truth:
                        wrong += 1
                        bad += 1
                cells.append(
                    f["status"].replace("_", " ")
                    + ("" if f["status"] in (truth, "indeterminate") else " (WRONG)")
                )
            b = rep["blast"]
            ci = b.get("ci95") or [float("nan")] * 2
            adj = b.get("adjusted") or {}
            adj_txt = (
                f"{adj['percent']:.1f} ({adj['ci95'][0]:.1f}-{adj['ci95'][1]:.1f})"
                if adj.get("applied")
                else "-"
            )
            print(f"| {share:g} | {a.fields} | {a.fields * PER_FIELD} | {rep['cells_detected']} | {rep['cells_counted']} | "
                  f"{b['percent']:.1f} ({ci[0]:.1f}-{ci[1]:.1f}) | {adj_txt} | {' | '.join(cells)} | {bad} |")  # fmt: skip
    print(f"\n{len(a.shares)} cases, {total} cut-off decisions: {decided} decided, {wrong} decided wrongly, "
          f"{total - decided} indeterminate ({time.perf_counter() - t0:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
