"""Measure the screening pipeline's blast confusion on validation cells (model.json ``blast_rates``).

The validation patches a bundle was selected on (never its held-out test share; never PBC) whose
class is counted are pasted once each, in a seeded random order, :data:`PER_FIELD` to a
2452 x 2056 field (:func:`~wsi_screen.training.compose.compose_real_field`), and the fields are
screened as ``wsi-screen run`` screens them: the configured detector, 250 px crops at the model's
scale, the classifier with its temperature, the countable-region mask. Each detection is matched
to the nearest patch centre (within a quarter patch, each patch at most once); per true group
(blast or other counted class) the detections called a counted class, and among them those called
blast, are counted. Unmatched detections (fragments, neighbours' parts) and undetected patches
are logged, not counted. The counts, not only the rates, are stored: their uncertainty widens
the adjusted blast interval (:mod:`wsi_screen.blast`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.blast_rates import BlastRates
from wsi_screen.classifiers.bundle import MODEL_JSON
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.config import AggregateConfig
from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import ModelBundleError
from wsi_screen.io import atomic_write_text
from wsi_screen.textfiles import read_json_object
from wsi_screen.training.calibrate import bundle_split
from wsi_screen.training.compose import PER_FIELD
from wsi_screen.training.compose import compose_real_field
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.schemes import ClassScheme

__all__ = ["RateCounts", "fit_blast_rates", "match_centres"]

log = logging.getLogger(__name__)


def match_centres(
    detections: NDArray[np.floating[Any]], centres: NDArray[np.floating[Any]], radius: float
) -> list[int | None]:
    """For each detection (x, y), the index of its patch centre, or None.

    Pairs are taken nearest first; each centre takes at most one detection, and only within
    ``radius`` pixels.

    Example:
        >>> match_centres(np.array([[10.0, 0], [300, 0], [12, 1]]), np.array([[0.0, 0], [290, 0]]), 50)
        [0, 1, None]
    """
    out: list[int | None] = [None] * len(detections)
    if not len(detections) or not len(centres):
        return out
    d = np.linalg.norm(detections[:, None, :] - centres[None, :, :], axis=2)
    taken: set[int] = set()
    for flat in np.argsort(d, axis=None):
        i, j = divmod(int(flat), len(centres))
        if d[i, j] > radius:
            break
        if out[i] is None and j not in taken:
            out[i] = j
            taken.add(j)
    return out


@dataclass
class RateCounts:
    """Running counts of one fit (see :class:`~wsi_screen.blast_rates.BlastRates`)."""

    blasts: int = 0
    blasts_called_blast: int = 0
    others: int = 0
    others_called_blast: int = 0
    unmatched: int = 0
    missed: int = 0
    excluded_calls: int = 0

    def add(self, truth: str, call: str, cfg: AggregateConfig) -> None:
        """Count one matched detection of true class ``truth`` called ``call``."""
        if call in cfg.excluded_classes:
            self.excluded_calls += 1
            return
        is_blast = call in cfg.blast_classes
        if truth in cfg.blast_classes:
            self.blasts += 1
            self.blasts_called_blast += is_blast
        else:
            self.others += 1
            self.others_called_blast += is_blast


def _compose_fields(
    paths: list[Path], labels: list[str], folder: Path, patch_px: int, seed: int, scales: list[float]
) -> list[tuple[Path, list[str], NDArray[np.float64]]]:
    import cv2

    order = np.random.default_rng(seed).permutation(len(paths))
    fields = []
    for f, start in enumerate(range(0, len(order), PER_FIELD)):
        idx = order[start : start + PER_FIELD]
        patches = list(
            load_patches([paths[i] for i in idx], patch_size_px=patch_px, scales=[scales[i] for i in idx])
        )
        img, centres = compose_real_field(patches)
        out = folder / f"val_field_{f:03d}.png"
        if not cv2.imwrite(str(out), img[:, :, ::-1]):
            msg = f"{out}: could not write a composed field"
            raise ConfigError(msg)
        fields.append((out, [labels[i] for i in idx], np.asarray(centres, np.float64)))
    return fields


def fit_blast_rates(
    bundle_dir: Path | str,
    data_root: Path | str,
    *,
    scheme: ClassScheme | None = None,
    config: ScreenConfig | None = None,
    seed: int = 0,
    write: bool = True,
) -> tuple[BlastRates, RateCounts]:
    """Measure ``bundle_dir``'s blast rates on its validation split of ``data_root``; write them into it.

    Args:
        bundle_dir: a bundle folder trained with a validation split.
        data_root: the data folder it was trained on.
        scheme: the class scheme of training (None: class folders are the classes).
        config: the screening configuration (detector, counting classes); None: the defaults.
        seed: order of the patches on the fields.
        write: write ``blast_rates`` into the bundle's model.json (atomically).

    Returns:
        The rates and the full counts (with unmatched detections and missed patches).
    """
    from wsi_screen.runner import build_screener

    folder = Path(bundle_dir)
    bundle = ModelBundle.load(folder)
    cfg = config or ScreenConfig()
    agg = cfg.aggregate
    split = bundle_split(bundle, data_root, scheme=scheme)
    items = [it for it in split.validation.items if it.target and it.target not in agg.excluded_classes]
    paths = [it.path for it in items]
    labels = [str(it.target) for it in items]
    scales = [it.scale for it in items]  # each source's patches brought to the model's scale
    if not any(lab in agg.blast_classes for lab in labels):
        msg = f"{data_root}: the validation split holds no {', '.join(agg.blast_classes)} patch"
        raise ConfigError(msg)
    screener, info = build_screener(model=str(folder), mpp=bundle.mpp, config=cfg)
    counts = RateCounts()
    with tempfile.TemporaryDirectory(prefix="wsi-screen-rates-") as tmp:
        fields = _compose_fields(paths, labels, Path(tmp), bundle.patch_size_px, seed, scales)
        screened = screener.screen([f[0] for f in fields])
        for item, (path, truth, centres) in zip(screened, fields, strict=True):
            if item.failure is not None:
                msg = f"{path.name}: {item.failure.message}"
                raise ConfigError(msg)
            calls = item.merged_calls(bundle.class_names, bundle.name)
            mask = item.counted_mask(calls.cells)
            xy = np.array([[c.x, c.y] for c in calls.cells], np.float64).reshape(-1, 2)
            matched = match_centres(xy, centres, bundle.patch_size_px / 4)
            for j, lab, used in zip(matched, calls.labels, mask, strict=True):
                if j is None:
                    counts.unmatched += 1
                elif used:
                    counts.add(truth[j], lab, agg)
            counts.missed += len(centres) - sum(j is not None for j in matched)
    rates = BlastRates(
        tuple(agg.blast_classes),
        tuple(agg.excluded_classes),
        counts.blasts,
        counts.blasts_called_blast,
        counts.others,
        counts.others_called_blast,
        (
            f"validation split ({split.source}) of {Path(data_root).name}: {len(paths)} patches of counted "
            f"classes composed {PER_FIELD} to a 2452 x 2056 field (seed {seed}), screened with detector "
            f"{info['detector']['name']}; {counts.unmatched} unmatched detections, {counts.missed} patches "
            f"undetected, {counts.excluded_calls} matched cells called an excluded class (not counted)"
        ),
    )
    if write:
        meta = folder / MODEL_JSON
        data = read_json_object(meta, error=ModelBundleError)  # read bounded, as ModelBundle.load does
        data["blast_rates"] = rates.to_json()
        atomic_write_text(meta, json.dumps(data, indent=2) + "\n")
    log.info(
        "%s: blast sensitivity %.3f, false-blast rate %.4f", folder, rates.sensitivity, rates.false_blast_rate
    )
    return rates, counts
