"""The shipped two-lab, 13-class classifier ``marrow13``: what it is, and that it classifies real cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsi_screen.classifiers import resolve_model
from wsi_screen.classifiers import shipped_models

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
FOLDER = ROOT / "wsi_screen" / "models" / "marrow13"
CLASSES = ("ART", "BAS", "BLA", "EBO", "EOS", "LYT", "MMZ", "MON", "MYB", "NGB", "NGS", "NIF", "PMO")


def test_bundle_is_shipped_small_calibrated_and_names_no_local_folder() -> None:
    assert "marrow13" in shipped_models()
    b = resolve_model("marrow13")
    assert b.class_names == CLASSES
    assert b.mpp == pytest.approx(0.0862) and b.patch_size_px == 250
    assert sum(p.stat().st_size for p in FOLDER.iterdir() if p.is_file()) < 25e6
    assert b.calibration is not None and b.domain is not None
    assert b.domain.get("cell_threshold", 0) > 0  # the unfamiliar-cell flag is fitted
    sources = b.provenance["data"]["split"]["manifest"]["sources"]
    assert [s["name"] for s in sources] == ["matek", "pbc"]
    # no folder of the training machine: every path recorded is relative
    assert not any(Path(s["root"]).is_absolute() for s in sources)
    split = json.loads((FOLDER / "split.json").read_text(encoding="utf-8"))
    listed = [*split["test"], *(p for fold in split["validation"] for p in fold)]
    listed += [s["root"] for s in split["manifest"]["sources"]]
    assert not [p for p in listed if Path(p).is_absolute()]
    card = (FOLDER / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in (
        "CC BY 4.0",
        "10.7937/TCIA.AXH3-T579",
        "10.17632/snkd93bnjr.1",
        "held-out",
        "HAC",
        "novelty",
    ):
        assert needle in card


def _heldout(source: str, folder: str, n_per_class: int) -> list[tuple[Path, str]]:
    from wsi_screen.training.datasets import source_label
    from wsi_screen.training.schemes import load_scheme

    split = json.loads((FOLDER / "split.json").read_text(encoding="utf-8"))
    scheme = load_scheme("pbc_marrow13") if source == "pbc" else None
    picks: dict[str, list[tuple[Path, str]]] = {}
    for rel in split["test_by_source"][source]:
        path = SHARED / folder / rel
        label = source_label(path, SHARED / folder, "prefix" if scheme else "folder")
        code = scheme.map(label) if scheme else label
        if code and len(picks.setdefault(code, [])) < n_per_class:
            picks[code].append((path, code))
    return [p for v in picks.values() for p in v]


@pytest.mark.skipif(not (SHARED / "pbc").is_dir(), reason="../shared/data absent: real-cell test skipped")
def test_classifies_held_out_cells_of_both_labs() -> None:
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.training.datasets import load_patches

    b = resolve_model("marrow13")
    clf = TimmClassifier(b, device="cpu", batch_size=16)
    for source, folder, mpp in (("matek", "matek_bm", 0.0862), ("pbc", "pbc", 0.099)):
        picks = _heldout(source, folder, 3)
        probs = clf.classify_arrays(load_patches([p for p, _ in picks], patch_size_px=250, scale=mpp / b.mpp))
        pred = [b.class_names[i] for i in probs.argmax(1)]
        correct = sum(p == t for p, (_, t) in zip(pred, picks, strict=True))
        # never seen in training or selection; chance would be about 1 in 13
        assert correct >= 0.6 * len(picks), (source, list(zip([t for _, t in picks], pred, strict=True)))
