"""Simulate the stopping rule: cells used and wrong cut-off decisions, per true blast share.

Usage:
    .venv/bin/python benchmarks/stopping_rule.py [--reps 2000] [--max-cells 5000] [--seed 0]

Each simulated specimen has a true blast share p; counted cells are independent draws (blast with
probability p). Counting stops at the first look (500 cells, then every 100) at which every cut-off
(5, 10, 20 %) is decided, or when ``--max-cells`` cells (all countable regions) are used. A decision
is wrong when it says ``raised`` while p is below the cut-off, or ``not_raised`` while p is at or
above it. Three rules: the two of wsi_screen.stopping, and a fixed-sample 95 % Clopper-Pearson
interval at every look ("naive"), which the sequential rules exist to replace.

Printed per rule and true share: median and mean cells used, share of specimens with every
cut-off decided, and wrong decisions (share of specimens with any wrong decision; the nominal
bound is 5 %, and 2.5 % per cut-off when p lies on it). No timing: the figures do not depend on the
machine's load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import betaincinv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsi_screen.stopping import SequentialRule  # noqa: E402

CUTS = (5.0, 10.0, 20.0)
SHARES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 35.0)


class Naive(SequentialRule):
    """A fixed-sample 95 % Clopper-Pearson interval at every look (not a sequential rule)."""

    def interval(self, k: int, n: int) -> list[float]:
        lo = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, 0.025))
        hi = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 0.975))
        return [round(100 * lo, 3), round(100 * hi, 3)]


def simulate(rule: SequentialRule, share: float, reps: int, max_cells: int, rng: np.random.Generator) -> dict:
    """Run ``reps`` specimens at a true blast share (percent) under ``rule``."""
    blasts = np.cumsum(rng.random((reps, max_cells)) < share / 100.0, axis=1)
    looks = list(range(rule.min_cells, max_cells + 1, rule.look_every))
    if looks[-1] != max_cells:
        looks.append(max_cells)  # the regions ran out: a last look, at the next look's error level
    used = np.full(reps, max_cells)
    decision = np.zeros((reps, len(CUTS)), np.int8)  # +1 raised, -1 not raised, 0 indeterminate
    open_ = np.ones(reps, bool)
    for n in looks:
        k = blasts[:, n - 1]
        state = np.zeros((reps, len(CUTS)), np.int8)
        for j, cut in enumerate(CUTS):
            raise_at, not_upto = rule.thresholds(n, cut)
            state[:, j] = np.where(k >= raise_at, 1, np.where(k <= not_upto, -1, 0))
        done = open_ & ((state != 0).all(axis=1) | (n == max_cells))
        used[done] = n
        decision[done] = state[done]
        open_ &= ~done
    truth = np.array([1 if share >= c else -1 for c in CUTS])
    wrong = (decision != 0) & (decision != truth)
    return {
        "median_cells": int(np.median(used)),
        "mean_cells": float(used.mean()),
        "all_decided": float((decision != 0).all(axis=1).mean()),
        "wrong_any": float(wrong.any(axis=1).mean()),
        "wrong_per_decision": float(wrong.sum() / max(1, (decision != 0).sum())),
    }


def main() -> None:
    """Print the table (markdown) for docs/stopping.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--max-cells", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rules = {
        "alpha_spending": SequentialRule("alpha_spending"),
        "confidence_sequence": SequentialRule("confidence_sequence"),
        "naive (fixed 95 % CI at every look)": Naive("alpha_spending"),
    }
    print(
        f"{args.reps} specimens per row; looks at 500 cells then every 100; at most {args.max_cells} cells;"
    )
    print(f"cut-offs {', '.join(f'{c:g} %' for c in CUTS)}; seed {args.seed}\n")
    print(
        "| rule | true blast % | median cells | mean cells | all decided | wrong (any cut-off) | wrong per decision |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rule in rules.items():
        rng = np.random.default_rng(args.seed)
        for share in SHARES:
            r = simulate(rule, share, args.reps, args.max_cells, rng)
            print(
                f"| {name} | {share:g} | {r['median_cells']} | {r['mean_cells']:.0f} | {r['all_decided']:.3f} "
                f"| {r['wrong_any']:.4f} | {r['wrong_per_decision']:.4f} |"
            )


if __name__ == "__main__":
    main()
