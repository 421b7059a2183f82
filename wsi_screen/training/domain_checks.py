"""What the out-of-domain gate says on pseudo-inputs of labelled patches, plain and shifted.

Used for the model card and the real-data tests: patches (held-out Matek, or an external set such
as PBC) are grouped into pseudo-inputs of 30-40 cells, each group is shifted as a whole (exposure,
red/blue swap, hue rotation) and judged exactly as a screened input is
(:meth:`~wsi_screen.classifiers.domain.DomainReference.judge`). Nothing here fits anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.training.calibrate import forward_outputs
from wsi_screen.training.domain_fit import perturb_exposure
from wsi_screen.training.domain_fit import rotate_hue
from wsi_screen.training.domain_fit import swap_red_blue

__all__ = ["EXPECTED", "SHIFTS", "gate_checks"]

Shift = Callable[[NDArray[np.uint8]], NDArray[np.uint8]]

SHIFTS: dict[str, Shift] = {
    "none": lambda p: p,
    "gamma 0.9": lambda p: perturb_exposure(p, 0.9, 1.0),
    "brightness x1.08": lambda p: perturb_exposure(p, 1.0, 1.08),
    "gamma 0.9 and brightness x1.08": lambda p: perturb_exposure(p, 0.9, 1.08),
    "red/blue swapped": swap_red_blue,
    "hue +30 deg": lambda p: rotate_hue(p, 30),
    "hue +90 deg": lambda p: rotate_hue(p, 90),
    "hue +180 deg": lambda p: rotate_hue(p, 180),
}
"""Shifts judged by :func:`gate_checks`, by name."""

EXPECTED = {
    "none": "in_domain",
    "gamma 0.9": "in_domain",
    "brightness x1.08": "in_domain",
    "gamma 0.9 and brightness x1.08": "in_domain",
    "red/blue swapped": "out_of_domain",
    "hue +90 deg": "out_of_domain",
    "hue +180 deg": "out_of_domain",
}
"""What issue 13 requires of the gate on an ordinary marrow field (``hue +30 deg`` is only reported)."""


def gate_checks(
    clf: Any,
    reference: DomainReference,
    patches: NDArray[np.uint8],
    *,
    shifts: dict[str, Shift] | None = None,
    n_groups: int = 100,
    group_size: tuple[int, int] = (30, 40),
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Judge ``n_groups`` random pseudo-inputs of ``patches`` under every shift.

    Args:
        clf: a :class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier` (the screening
            transform).
        reference: the bundle's domain reference.
        patches: uint8 patches at the model's scale (N x P x P x 3).
        shifts: name -> function of a patch array (default :data:`SHIFTS`).
        n_groups: pseudo-inputs per shift (the same groups for every shift).
        group_size: (min, max) cells per pseudo-input (capped at N).
        seed: seed of the groups.

    Returns:
        shift name -> ``{n_groups, out_of_domain (share), fired: {colour, features} (shares),
        score: {median, min, max}, expected}``.
    """
    rng = np.random.default_rng(seed)
    n = len(patches)
    sizes = rng.integers(group_size[0], group_size[1] + 1, n_groups).clip(max=n)
    groups = [rng.choice(n, size=int(s), replace=False) for s in sizes]
    out: dict[str, dict[str, Any]] = {}
    for name, shift in (shifts or SHIFTS).items():
        o = forward_outputs(clf, shift(patches))
        dist = reference.feature_distances(o.features)
        verdicts = [reference.judge(o.colour[g], dist[g]) for g in groups]
        scores = np.array([v["score"] for v in verdicts], dtype=np.float64)
        fired = {
            s: float(np.mean([v["signals"][s]["score"] > v["signals"][s]["threshold"] for v in verdicts]))
            for s in ("colour", "features")
        }
        out[name] = {
            "n_groups": len(groups),
            "out_of_domain": float(np.mean([v["status"] == "out_of_domain" for v in verdicts])),
            "fired": fired,
            "score": {
                "median": float(np.median(scores)),
                "min": float(scores.min()),
                "max": float(scores.max()),
            },
            "expected": EXPECTED.get(name, "report only"),
        }
    return out
