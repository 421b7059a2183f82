"""Out-of-domain gate: is an input like what the classifier saw in training?

Two signals, each compared with a threshold fitted on validation data
(:mod:`wsi_screen.training.domain_fit`):

- **colour**: per cell, the mean and standard deviation of the optical density
  ``OD = -ln((I + 1) / 256)`` of each RGB channel over its patch (6 numbers); per input, the median
  over its cells, and its Mahalanobis distance to the training patches' mean under their
  (Ledoit-Wolf) covariance. Optical density is linear in stain amount (Beer-Lambert), and since a
  Mahalanobis distance does not change under a linear map of the variables, the mean-OD part of
  this is the same distance as on HED stain densities: no stain matrix is needed.
- **features**: per cell, the network's penultimate (pre-logit) features, projected by a PCA fitted
  on training features, and the class-conditional Mahalanobis distance with one shared
  Ledoit-Wolf covariance (Lee et al. 2018): the distance to the nearest class mean. Per input, the
  median over its cells.

The per-input judgement reports each signal's score and threshold; ``score`` is the larger of the
two score/threshold ratios, so ``threshold`` is 1 and the input is out of domain when either
signal is above its threshold. The reasons name the signals that fired.

The reference is stored as tensors in a safetensors file beside ``model.json`` (never pickle);
its thresholds and how they were fitted are JSON in model.json's ``domain`` block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import ModelBundleError

__all__ = [
    "COLOUR_STATS",
    "DOMAIN_FILE",
    "DomainReference",
    "DomainTally",
    "colour_stats",
]

DOMAIN_FILE = "domain.safetensors"
COLOUR_STATS = ("od_mean_r", "od_mean_g", "od_mean_b", "od_std_r", "od_std_g", "od_std_b")
"""The colour statistics of a cell's patch, in column order."""
COLOUR_STRIDE = 2
"""Every second pixel in each direction: the statistics of a 250 px patch, at a quarter the work."""
_OD = (-np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)
_OD_LUT = np.ascontiguousarray(np.repeat(_OD.reshape(1, 256, 1), 3, axis=2))  # cv2.LUT, 3 channels
_TENSORS = (
    "colour_mean",
    "colour_precision",
    "pca_mean",
    "pca_components",
    "class_means",
    "feature_precision",
)


def colour_stats(patches: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Per-patch mean and std of the optical density of R, G and B (N x 6, :data:`COLOUR_STATS`).

    Computed on every :data:`COLOUR_STRIDE`-th pixel of the patch as cut from the source, before
    any preprocessing or resizing, identically when fitting and when screening.

    Example:
        >>> white = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
        >>> colour_stats(white).tolist()
        [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    if patches.ndim != 4 or patches.shape[3] != 3:
        msg = f"patches must be N x H x W x 3 uint8, got shape {patches.shape}"
        raise ValueError(msg)
    import cv2  # per patch in C: about 7x faster than numpy's gather + float64 reductions

    out = np.empty((len(patches), 6), np.float64)
    for i, patch in enumerate(patches):
        od = cv2.LUT(np.ascontiguousarray(patch[::COLOUR_STRIDE, ::COLOUR_STRIDE]), _OD_LUT)
        mean, std = cv2.meanStdDev(od)  # population std, as numpy's default
        out[i, :3], out[i, 3:] = mean.ravel(), std.ravel()
    return out.astype(np.float32)


def _mahalanobis(
    x: NDArray[np.float64], mean: NDArray[np.float64], precision: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Row-wise Mahalanobis distance of ``x`` (N x D) to ``mean`` (D) under ``precision`` (D x D)."""
    d = x - mean
    out: NDArray[np.float64] = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, precision, d), 0.0))
    return out


@dataclass(frozen=True)
class DomainReference:
    """What the classifier saw in training, and the thresholds beyond which an input is foreign.

    Attributes:
        colour_mean: mean colour statistics of the training patches (6).
        colour_precision: inverse Ledoit-Wolf covariance of those statistics (6 x 6).
        pca_mean: mean penultimate feature of the training patches (F).
        pca_components: PCA directions fitted on the training features (K x F, orthonormal rows).
        class_means: mean of each training class in PCA space (C x K).
        feature_precision: inverse Ledoit-Wolf covariance of the class-centred PCA features (K x K).
        colour_threshold: an input's colour distance above this is out of domain.
        feature_threshold: an input's median feature distance above this is out of domain.
        cell_threshold: a single cell's feature distance (its novelty) above this marks the cell
            unfamiliar: unlike any class the model learned (inf: never marked; older bundles).
        info: JSON-able record of how the reference and thresholds were fitted.
    """

    colour_mean: NDArray[np.float64]
    colour_precision: NDArray[np.float64]
    pca_mean: NDArray[np.float64]
    pca_components: NDArray[np.float64]
    class_means: NDArray[np.float64]
    feature_precision: NDArray[np.float64]
    colour_threshold: float = math.inf
    feature_threshold: float = math.inf
    cell_threshold: float = math.inf
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check shapes agree and everything is finite."""
        k, f = self.pca_components.shape if self.pca_components.ndim == 2 else (-1, -1)
        shapes_ok = (
            self.colour_mean.shape == (len(COLOUR_STATS),)
            and self.colour_precision.shape == (len(COLOUR_STATS),) * 2
            and self.pca_mean.shape == (f,)
            and self.class_means.ndim == 2
            and self.class_means.shape[1] == k
            and self.feature_precision.shape == (k, k)
            and k >= 1
        )
        if not shapes_ok:
            msg = "domain reference: tensor shapes do not fit together " + ", ".join(
                f"{n} {getattr(self, n).shape}" for n in _TENSORS
            )
            raise ModelBundleError(msg)
        if not all(np.isfinite(getattr(self, n)).all() for n in _TENSORS):
            msg = "domain reference: tensors contain NaN or infinity"
            raise ModelBundleError(msg)
        for name in ("colour_threshold", "feature_threshold", "cell_threshold"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0) or math.isnan(v):
                msg = f"domain reference: {name} must be a number > 0, got {v!r}"
                raise ModelBundleError(msg)

    @property
    def feature_dim(self) -> int:
        """Length F of the penultimate feature vector the reference expects."""
        return int(self.pca_mean.shape[0])

    def project(self, features: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """PCA coordinates (N x K) of penultimate features (N x F)."""
        f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if f.shape[1] != self.feature_dim:
            msg = f"domain reference expects {self.feature_dim} features per cell, got {f.shape[1]}"
            raise ValueError(msg)
        out: NDArray[np.float64] = (f - self.pca_mean) @ self.pca_components.T
        return out

    def feature_distances(self, features: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """Per-cell distance to the nearest training class mean (Mahalanobis in PCA space)."""
        z = self.project(features)
        if len(z) == 0:
            return np.zeros(0)
        d = np.stack([_mahalanobis(z, m, self.feature_precision) for m in self.class_means], axis=1)
        out: NDArray[np.float64] = d.min(axis=1)
        return out

    def colour_distance(self, stats: NDArray[np.floating[Any]]) -> float:
        """Mahalanobis distance of the median colour statistics of an input's cells (N x 6)."""
        med = np.median(np.asarray(stats, dtype=np.float64), axis=0)[None]
        return float(_mahalanobis(med, self.colour_mean, self.colour_precision)[0])

    def judge(
        self, stats: NDArray[np.floating[Any]], feature_distances: NDArray[np.floating[Any]]
    ) -> dict[str, Any]:
        """Judge one input from its cells' colour statistics and feature distances.

        Returns:
            ``{status, score, threshold, reasons, n_cells, signals}``. ``status`` is
            ``in_domain`` or ``out_of_domain``, or ``not_assessed`` for an input without cells;
            ``score`` is the larger of colour/threshold and feature/threshold (so ``threshold`` is
            1.0); ``signals`` holds each signal's own score and threshold; ``fitted_on_cells`` the
            smallest group of cells the thresholds were fitted on.
        """
        n = len(feature_distances)
        if n == 0 or len(stats) == 0:
            return {
                "status": "not_assessed",
                "score": None,
                "threshold": 1.0,
                "reasons": ["no cells: nothing to compare with the training data"],
                "n_cells": 0,
                "signals": {},
            }
        colour = self.colour_distance(stats)
        feat = float(np.median(np.asarray(feature_distances, dtype=np.float64)))
        signals = {
            "colour": {"score": colour, "threshold": self.colour_threshold},
            "features": {"score": feat, "threshold": self.feature_threshold},
        }
        reasons = []
        if colour > self.colour_threshold:
            reasons.append(
                "colour/stain of the cells unlike the training data "
                f"(colour distance {colour:.2f} > threshold {self.colour_threshold:.2f})"
            )
        if feat > self.feature_threshold:
            reasons.append(
                "the cells look unlike the training cells to the classifier "
                f"(median feature distance {feat:.2f} > threshold {self.feature_threshold:.2f})"
            )
        min_cells = int(self.info.get("group_size", [30])[0])
        if n < min_cells:
            reasons.append(f"only {n} cell(s); thresholds were fitted on groups of {min_cells} or more")
        return {
            "status": "out_of_domain"
            if colour > self.colour_threshold or feat > self.feature_threshold
            else "in_domain",
            "score": max(colour / self.colour_threshold, feat / self.feature_threshold),
            "threshold": 1.0,
            "reasons": reasons,
            "n_cells": n,
            "fitted_on_cells": min_cells,
            "signals": signals,
        }

    # --- storage -----------------------------------------------------------------------------

    def to_json(self, file: str = DOMAIN_FILE) -> dict[str, Any]:
        """Return the model.json ``domain`` block (thresholds and fitting record; tensors live in ``file``)."""
        return {
            "file": file,
            "colour_threshold": float(self.colour_threshold),
            "feature_threshold": float(self.feature_threshold),
            **({"cell_threshold": float(self.cell_threshold)} if math.isfinite(self.cell_threshold) else {}),
            "feature_dim": self.feature_dim,
            "components": int(self.pca_components.shape[0]),
            "classes": int(self.class_means.shape[0]),
            "colour_stats": list(COLOUR_STATS),
            "colour_stride": COLOUR_STRIDE,
            **self.info,
        }

    def tensor_bytes(self) -> bytes:
        """The reference tensors as the bytes of a safetensors file."""
        from safetensors.numpy import save

        data: bytes = save({n: np.ascontiguousarray(getattr(self, n), dtype=np.float64) for n in _TENSORS})
        return data

    def save_tensors(self, path: str | Path) -> None:
        """Write the reference tensors to a safetensors file atomically."""
        from wsi_screen.io import atomic_write_bytes

        atomic_write_bytes(path, self.tensor_bytes())

    @classmethod
    def load(cls, folder: str | Path, block: object, where: str = "model.json") -> DomainReference:
        """Load the reference named by a model.json ``domain`` block from ``folder``.

        Raises:
            ModelBundleError: the block is malformed, the file is missing or unreadable, or its
                tensors do not fit together (the message names the file).
        """
        if not isinstance(block, dict):
            msg = f"{where}: domain must be an object, got {type(block).__name__}"
            raise ModelBundleError(msg)
        path = Path(folder) / str(block.get("file", DOMAIN_FILE))
        if not path.is_file():
            msg = f"{where}: domain reference file {path} not found"
            raise ModelBundleError(msg)
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            t = load_file(str(path))
        except (SafetensorError, OSError) as e:
            msg = f"{path}: not a readable safetensors file ({e})"
            raise ModelBundleError(msg) from e
        missing = [n for n in _TENSORS if n not in t]
        if missing:
            msg = f"{path}: missing tensor(s) {', '.join(missing)}"
            raise ModelBundleError(msg)
        known = {"file", "colour_threshold", "feature_threshold", "feature_dim", "components", "classes"}
        known |= {"cell_threshold"}
        known |= {"colour_stats", "colour_stride"}
        try:
            ref = cls(
                **{n: np.asarray(t[n], dtype=np.float64) for n in _TENSORS},
                colour_threshold=float(block["colour_threshold"]),
                feature_threshold=float(block["feature_threshold"]),
                cell_threshold=float(block.get("cell_threshold", math.inf)),
                info={k: v for k, v in block.items() if k not in known},
            )
        except KeyError as e:
            msg = f"{where}: domain block has no {e.args[0]}"
            raise ModelBundleError(msg) from e
        except (TypeError, ValueError, ModelBundleError) as e:
            msg = f"{path}: {e}"
            raise ModelBundleError(msg) from e
        if int(block.get("colour_stride", COLOUR_STRIDE)) != COLOUR_STRIDE:
            msg = f"{where}: domain colour_stride {block.get('colour_stride')} differs from this version's {COLOUR_STRIDE}"
            raise ModelBundleError(msg)
        return ref


@dataclass
class DomainTally:
    """Accumulates one input's per-cell colour statistics and feature distances, batch by batch."""

    stats: list[NDArray[np.float32]] = field(default_factory=list)
    distances: list[NDArray[np.float64]] = field(default_factory=list)

    def add(self, stats: NDArray[np.floating[Any]], distances: NDArray[np.floating[Any]]) -> None:
        """Add the cells of one batch (their colour statistics and feature distances)."""
        if len(stats) != len(distances):
            msg = f"domain tally: {len(stats)} colour rows but {len(distances)} feature distances"
            raise ValueError(msg)
        self.stats.append(np.asarray(stats, dtype=np.float32).reshape(-1, len(COLOUR_STATS)))
        self.distances.append(np.asarray(distances, dtype=np.float64).reshape(-1))

    def judge(self, reference: DomainReference) -> dict[str, Any]:
        """The input's judgement (:meth:`DomainReference.judge`) over every cell added so far."""
        stats = np.concatenate(self.stats) if self.stats else np.zeros((0, len(COLOUR_STATS)))
        dist = np.concatenate(self.distances) if self.distances else np.zeros(0)
        return reference.judge(stats, dist)
