"""The default model's domain gate on the issue-13 shifts, and what it says on PBC (external).

Usage:
    python benchmarks/domain_gate.py --matek ../shared/data/matek_bm [--pbc ../shared/data/pbc]

Draws 60 pseudo-inputs of 30-40 cells from 400 held-out Matek patches and judges each under every
shift of :data:`wsi_screen.training.domain_checks.SHIFTS` (``gate_checks``); then 60 groups of 300
PBC images, resized whole and rescaled from 0.099 um/px (scored only: PBC fits nothing).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True)
    ap.add_argument("--pbc", type=Path, default=None)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.training.datasets import load_patches
    from wsi_screen.training.domain_checks import gate_checks
    from wsi_screen.training.overlap import heldout_files

    bundle = resolve_model(args.model)
    clf = TimmClassifier(bundle, device="cpu")
    ref = clf.domain  # the bundle's reference, loaded with the classifier
    if ref is None:
        msg = f"{args.model}: the model has no domain reference"
        raise SystemExit(msg)
    files, _ = heldout_files(bundle)
    assert files, f"{bundle.path}: no held-out list"
    held = sorted(files)
    random.Random(0).shuffle(held)
    patches = load_patches([args.matek / p for p in held[:400]], patch_size_px=bundle.patch_size_px)
    print(f"model {bundle.name} ({bundle.architecture}); 60 groups of 30-40 of 400 held-out patches")
    print("| shift | expected | out of domain | colour fired | features fired | median score |")
    print("|---|---|---|---|---|---|")
    groups = {"n_groups": 60}
    for name, r in gate_checks(clf, ref, patches, **groups).items():
        print(_row(name, r))
    if args.pbc is not None:
        pbc = sorted(args.pbc.rglob("*.jpg"))
        random.Random(0).shuffle(pbc)
        for name, scale in (("PBC resized whole", None), ("PBC at 0.099 um/px", 0.099 / bundle.mpp)):
            pp = load_patches(pbc[:300], patch_size_px=bundle.patch_size_px, scale=scale)
            r = gate_checks(clf, ref, pp, shifts={name: lambda p: p}, **groups)[name]
            print(_row(name, r))


def _row(name: str, r: dict) -> str:
    return (
        f"| {name} | {r.get('expected')} | {r['out_of_domain']:.2f} | {r['fired']['colour']:.2f} | "
        f"{r['fired']['features']:.2f} | {r['score']['median']:.2f} |"
    )


if __name__ == "__main__":
    main()
