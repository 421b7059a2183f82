"""Leave-one-class-out measurement of the unfamiliar-cell flag (novelty score) of a bundle.

For each class k of the bundle: the novelty reference (PCA + class means + shared covariance of the
penultimate features, as ``calibrate`` fits it) is fitted on the training patches of every class
but k, its cell threshold on the validation patches of every class but k, and then the held-out
test patches of class k (never in any fit: "a class the model lacks") are scored against the
held-out patches of the other classes. Prints the AUROC of novelty (k against known) and the share
of k's cells and of known cells flagged at the threshold, per class, and their mean.

The network itself was trained with class k, so its features separate k better than a network
that never saw k would: these figures are an upper bound on the flag's power for a truly unknown
class. Measuring that needs one training per class left out.

    .venv/bin/python benchmarks/novelty_loco.py runs/marrow13 examples/training/marrow13.toml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.training.calibrate import bundle_split
from wsi_screen.training.calibrate import outputs_of_files
from wsi_screen.training.domain_fit import GateFitConfig
from wsi_screen.training.domain_fit import fit_reference
from wsi_screen.training.manifest import relative_names
from wsi_screen.training.manifest import scan_data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("data", type=Path, help="the data folder or manifest the bundle was trained on")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    bundle = ModelBundle.load(args.bundle)
    split = bundle_split(bundle, args.data)
    ps, manifest = scan_data(args.data, bundle.mpp, None)
    test_names = set(json.loads((args.bundle / "split.json").read_text(encoding="utf-8")).get("test", []))
    names = relative_names(ps, manifest)
    test = ps.subset([i for i, n in enumerate(names) if n in test_names])
    clf = TimmClassifier(bundle, device="cpu", threads=args.threads)
    clf.model.eval()
    out = {
        part: outputs_of_files(clf, bundle, s.paths, scales=s.scales)
        for part, s in (("train", split.train), ("validation", split.validation), ("test", test))
    }
    y = {"train": split.train.labels, "validation": split.validation.labels, "test": test.labels}
    gate = GateFitConfig()
    rows = []
    print(f"{'left out':<9} {'n test':>6} {'AUROC':>6} {'flagged (out)':>13} {'flagged (known)':>15}")
    for k, code in enumerate(bundle.class_names):
        keep_tr, keep_va = y["train"] != k, y["validation"] != k
        ref = fit_reference(
            out["train"].features[keep_tr],
            y["train"][keep_tr],
            out["train"].colour[keep_tr],
            components=gate.components,
        )
        thr = float(
            np.quantile(ref.feature_distances(out["validation"].features[keep_va]), gate.cell_quantile)
        )
        d = ref.feature_distances(out["test"].features)
        is_k = y["test"] == k
        if not is_k.any():
            continue
        auc = float(roc_auc_score(is_k, d))
        rows.append(
            (code, int(is_k.sum()), auc, float((d[is_k] > thr).mean()), float((d[~is_k] > thr).mean()))
        )
        print(f"{code:<9} {rows[-1][1]:>6} {auc:>6.3f} {rows[-1][3]:>13.3f} {rows[-1][4]:>15.3f}")
    mean = np.mean([r[2] for r in rows])
    print(
        f"{'mean':<9} {'':>6} {mean:>6.3f} {np.mean([r[3] for r in rows]):>13.3f} {np.mean([r[4] for r in rows]):>15.3f}"
    )
    print(f"# {len(split.train.items)} training, {len(split.validation.items)} validation, {len(test.items)} "
          f"held-out patches; cell quantile {gate.cell_quantile}; {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
