"""How much numeric precision moves the default model's held-out figures (issue 13).

Usage:
    python benchmarks/precision_spread.py --matek ../shared/data/matek_bm

Classifies the model's held-out patches four ways (fp32 / bf16 autocast, BatchNorm folded or as
trained) and prints macro recall of each and how many calls differ from fp32 as trained.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from sklearn.metrics import recall_score

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.training.datasets import load_patches
    from wsi_screen.training.overlap import heldout_files

    bundle = resolve_model(args.model)
    files, _ = heldout_files(bundle)
    assert files, f"{bundle.path}: no held-out list"
    names = sorted(files)
    x = load_patches([args.matek / n for n in names], patch_size_px=bundle.patch_size_px)
    y = np.array([bundle.class_names.index(n.split("/")[0]) for n in names])
    calls = {}
    print(f"model {bundle.name} ({bundle.architecture}), {len(names)} held-out patches")
    print("| precision | BatchNorm | macro recall | calls differing from fp32 as trained |")
    print("|---|---|---|---|")
    for reduced, fold in itertools.product((False, True), (False, True)):
        clf = TimmClassifier(bundle, device="cpu", batch_size=64, reduced_precision=reduced, fold_bn=fold)
        calls[reduced, fold] = clf.classify_arrays(x).argmax(1)
        diff = int((calls[reduced, fold] != calls[False, False]).sum())
        prec = "fp32" if clf.dtype is None else str(clf.dtype).removeprefix("torch.")
        net = "folded" if fold else "as trained"
        print(f"| {prec} | {net} | {recall_score(y, calls[reduced, fold], average='macro'):.4f} | {diff} |")


if __name__ == "__main__":
    main()
