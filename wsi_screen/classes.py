"""The 21 bone-marrow morphology classes of Matek et al. 2021 (names and lineages for display).

Class *groups* used for counting (blast-equivalent, excluded, myeloid, erythroid) are not here:
they are configuration (:class:`wsi_screen.config.AggregateConfig`).
"""

from __future__ import annotations

MATEK_CLASSES: dict[str, tuple[str, str]] = {
    "ABE": ("abnormal eosinophil", "granulopoiesis"),
    "ART": ("artefact", "other"),
    "BAS": ("basophil", "granulopoiesis"),
    "BLA": ("blast", "precursor"),
    "EBO": ("erythroblast", "erythropoiesis"),
    "EOS": ("eosinophil", "granulopoiesis"),
    "FGC": ("faggot cell", "granulopoiesis"),
    "HAC": ("hairy cell", "lymphopoiesis"),
    "KSC": ("smudge cell", "other"),
    "LYI": ("immature lymphocyte", "lymphopoiesis"),
    "LYT": ("lymphocyte", "lymphopoiesis"),
    "MMZ": ("metamyelocyte", "granulopoiesis"),
    "MON": ("monocyte", "monopoiesis"),
    "MYB": ("myelocyte", "granulopoiesis"),
    "NGB": ("band neutrophil", "granulopoiesis"),
    "NGS": ("segmented neutrophil", "granulopoiesis"),
    "NIF": ("not identifiable", "other"),
    "OTH": ("other cell", "other"),
    "PEB": ("proerythroblast", "erythropoiesis"),
    "PLM": ("plasma cell", "lymphopoiesis"),
    "PMO": ("promyelocyte", "granulopoiesis"),
}


def class_label(code: str) -> str:
    """Human-readable name of a class code (the code itself when unknown)."""
    return MATEK_CLASSES.get(code, (code, ""))[0]
