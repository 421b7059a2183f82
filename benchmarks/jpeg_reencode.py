"""What re-encoding the training patches as JPEG changes (the GPU transfer of issue 13).

Usage:
    python benchmarks/jpeg_reencode.py --matek ../shared/data/matek_bm [--quality 90]

Re-encodes every training and validation patch of the default model's split (all but its
held-out list) with OpenCV at --quality and prints the total size and the mean absolute change
in grey levels (0-255) against the original decode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True)
    ap.add_argument("--quality", type=int, default=90)
    args = ap.parse_args()

    import cv2

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.training.overlap import heldout_files

    held, _ = heldout_files(resolve_model("default"))
    assert held, "the default model has no held-out list"
    paths = [p for p in sorted(args.matek.rglob("*.jpg")) if str(p.relative_to(args.matek)) not in held]
    size, err = 0, []
    for p in paths:
        img = cv2.imread(str(p))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        assert ok, p
        size += len(buf)
        err.append(float(np.abs(cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.int16) - img).mean()))
    print(
        f"{len(paths)} training + validation patches at JPEG quality {args.quality}: {size / 1e6:.1f} MB, "
        f"mean absolute change {np.mean(err):.2f} grey levels (max per image {np.max(err):.2f})"
    )


if __name__ == "__main__":
    main()
