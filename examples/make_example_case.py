"""Make the example CASE used by the README quick start: real Matek cells composed into 4 fields.

48 real bone-marrow patches (250 x 250 px, 0.0862 um/px) from the default model's held-out test
split (never trained on) are pasted, with feathered edges, on a pale background in four
1226 x 1028 px fields (a quarter of a Matek field each), 12 per field. The cells are real; the
fields are composed (no real field shows cells on a regular grid), and each patch brings parts of
its neighbours, which the detector may find too.

Source: Matek C., Krappe S., Münzenmayer C., Haferlach T., Marr C. "An Expert-Annotated Dataset of
Bone Marrow Cytology in Hematologic Malignancies", The Cancer Imaging Archive (2021),
doi:10.7937/TCIA.AXH3-T579, CC BY 4.0 (see examples/ATTRIBUTION.md).

Usage:
    python examples/make_example_case.py [--data ../shared/data/matek_bm]
    # writes examples/case_matek/field_0N.jpg and examples/case_matek_truth.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from _synthetic import compose_real_field  # noqa: E402

MIX = {"BLA": 8, "NGS": 10, "LYT": 8, "MON": 6, "PMO": 6, "EOS": 5, "ART": 3, "NIF": 2}
"""Patches per class (48): blasts at about 1 in 6 of the cells, so the 5 % cut-off is decided and
the others are not at this count."""
FIELDS, WIDTH, HEIGHT, SPACING = 4, 1226, 1028, 300


def heldout(data: Path) -> dict[str, list[Path]]:
    """Held-out test patches of the default model, by class."""
    listing = REPO / "wsi_screen" / "models" / "default" / "heldout_test.txt"
    out: dict[str, list[Path]] = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            out.setdefault(line.split("/")[0], []).append(data / line)
    return out


def main() -> None:
    """Write the case folder and its truth table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "matek_bm")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: no such folder (the Matek patches; see ../shared/data/README.md)")
    rng = np.random.default_rng(14)
    by_class = heldout(args.data)
    picks = [(c, p) for c, n in MIX.items() for p in rng.choice(sorted(by_class[c]), n, replace=False)]
    order = rng.permutation(len(picks))
    picks = [picks[i] for i in order]
    per_field = len(picks) // FIELDS
    case = HERE / "case_matek"
    case.mkdir(exist_ok=True)
    rows = []
    for f in range(FIELDS):
        chunk = picks[f * per_field : (f + 1) * per_field]
        patches = [cv2.imread(str(p))[:, :, ::-1] for _, p in chunk]
        img, centres = compose_real_field(patches, WIDTH, HEIGHT, SPACING)
        if len(centres) != len(chunk):
            sys.exit(f"field {f + 1}: {len(chunk)} patches, room for {len(centres)}")
        name = f"field_{f + 1:02d}.jpg"
        cv2.imwrite(str(case / name), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
        for (cls, path), (x, y) in zip(chunk, centres, strict=True):
            rows.append({"field": name, "x": x, "y": y, "class": cls, "source": path.name})
    with (HERE / "case_matek_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["field", "x", "y", "class", "source"])
        writer.writeheader()
        writer.writerows(rows)
    for p in sorted(case.iterdir()):
        print(f"{p.relative_to(REPO)}: {p.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
