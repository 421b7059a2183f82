"""Fit the out-of-domain reference on training patches and its thresholds on validation patches.

The reference (:class:`~wsi_screen.classifiers.domain.DomainReference`) describes the training
patches: the mean and Ledoit-Wolf covariance of their colour statistics, and a PCA of their
penultimate features with class means and a shared Ledoit-Wolf covariance.

The thresholds are fitted on **validation** patches grouped into pseudo-inputs, as a field holds
them: random groups of 30-40 cells, half drawn uniformly from the validation split and half with a
skewed class mix (Dirichlet weights, alpha 0.5: a marrow field dominated by one or two lineages is
ordinary). Each group is seen under one exposure setting of a grid of gamma (0.8, 1.0, 1.2) and
brightness (x0.9, 1.0, 1.1), so ordinary exposure differences count as in domain. A signal's
threshold is the 99.5th percentile of its group scores times a margin (1.25): with the quantile
alone, about 1 in 200 ordinary fields would fire; the margin keeps fields a little further from the
validation data than any group seen in fitting inside. Both are recorded in model.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.errors import ConfigError

__all__ = [
    "GateFitConfig",
    "fit_reference",
    "fit_thresholds",
    "perturb_exposure",
    "rotate_hue",
    "sample_groups",
    "swap_red_blue",
]


@dataclass(frozen=True)
class GateFitConfig:
    """How the reference and its thresholds are fitted (recorded in model.json ``domain``).

    Attributes:
        components: PCA components of the penultimate features (capped by the data).
        group_size: (min, max) cells of a pseudo-input.
        n_groups: pseudo-inputs drawn from the validation patches.
        skewed_share: share of pseudo-inputs with a Dirichlet class mix instead of a uniform draw.
        dirichlet_alpha: concentration of that class mix (small: dominated by few classes).
        gammas: gamma settings of the exposure grid.
        brightness: brightness factors of the exposure grid.
        quantile: quantile of the pseudo-input scores a threshold starts from.
        margin: factor applied to that quantile.
        cell_quantile: quantile of the single validation cells' feature distances (unexposed
            view) above which a cell is marked unfamiliar: the share of ordinary known cells
            marked is 1 - cell_quantile.
        seed: seed of the group draws.
    """

    components: int = 32
    group_size: tuple[int, int] = (30, 40)
    n_groups: int = 2000
    skewed_share: float = 0.5
    dirichlet_alpha: float = 0.5
    gammas: tuple[float, ...] = (0.8, 1.0, 1.2)
    brightness: tuple[float, ...] = (0.9, 1.0, 1.1)
    quantile: float = 0.995
    margin: float = 1.25
    cell_quantile: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        """Validate ranges."""
        lo, hi = self.group_size
        checks = [
            (self.components >= 1, "components >= 1"),
            (1 <= lo <= hi, "1 <= group_size[0] <= group_size[1]"),
            (self.n_groups >= 10, "n_groups >= 10"),
            (0 <= self.skewed_share <= 1, "0 <= skewed_share <= 1"),
            (self.dirichlet_alpha > 0, "dirichlet_alpha > 0"),
            (0.5 <= self.quantile < 1, "0.5 <= quantile < 1"),
            (self.margin >= 1, "margin >= 1"),
            (0.5 <= self.cell_quantile < 1, "0.5 <= cell_quantile < 1"),
            (bool(self.gammas) and all(g > 0 for g in self.gammas), "gammas > 0"),
            (bool(self.brightness) and all(b > 0 for b in self.brightness), "brightness > 0"),
        ]
        for ok, rule in checks:
            if not ok:
                msg = f"domain gate config: expected {rule}"
                raise ConfigError(msg)

    @property
    def views(self) -> list[tuple[float, float]]:
        """The exposure grid: every (gamma, brightness) pair."""
        return [(g, b) for g in self.gammas for b in self.brightness]

    def to_json(self) -> dict[str, Any]:
        """JSON-able record of the settings."""
        d = asdict(self)
        d["group_size"] = list(self.group_size)
        d["gammas"] = list(self.gammas)
        d["brightness"] = list(self.brightness)
        return d


# --- image shifts: the exposure grid of fitting, and the faults the gate must catch ----------


def perturb_exposure(
    patches: NDArray[np.uint8], gamma: float = 1.0, brightness: float = 1.0
) -> NDArray[np.uint8]:
    """Apply ``I' = brightness * I ** gamma`` (I in 0-1) to uint8 patches, clipped to 0-255.

    Example:
        >>> perturb_exposure(np.array([[[[64, 128, 255]]]], dtype=np.uint8), 1.0, 1.1).tolist()
        [[[[70, 141, 255]]]]
    """
    lut = np.clip(255.0 * brightness * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return lut[patches]


def swap_red_blue(patches: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Exchange the red and blue channels (an RGB/BGR export fault)."""
    return np.ascontiguousarray(patches[..., ::-1])


def rotate_hue(patches: NDArray[np.uint8], degrees: float) -> NDArray[np.uint8]:
    """Rotate the hue of uint8 RGB patches by ``degrees`` (OpenCV HSV, saturation and value kept)."""
    import cv2

    out = np.empty_like(patches)
    shift = round(degrees / 2.0)  # OpenCV's 8-bit hue runs 0-179
    for i, p in enumerate(patches):
        hsv = cv2.cvtColor(np.ascontiguousarray(p), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        out[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out


# --- the reference -----------------------------------------------------------------------------


def _gaussian(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and inverse Ledoit-Wolf covariance of the rows of ``x``."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(x)
    return np.asarray(lw.location_, dtype=np.float64), np.asarray(lw.precision_, dtype=np.float64)


def fit_reference(
    features: NDArray[np.floating[Any]],
    labels: NDArray[np.integer[Any]],
    colour: NDArray[np.floating[Any]],
    *,
    components: int = 32,
) -> DomainReference:
    """Fit the reference (no thresholds yet) on training patches.

    Args:
        features: penultimate features of the training patches (N x F).
        labels: their class indices (N); every class present is given its own mean.
        colour: their colour statistics (N x 6, :func:`~wsi_screen.classifiers.domain.colour_stats`).
        components: PCA components (at most F and N - 1).

    Raises:
        ConfigError: too few patches, or mismatched lengths.
    """
    from sklearn.decomposition import PCA

    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels, dtype=np.int64)
    c = np.asarray(colour, dtype=np.float64)
    if not len(f) == len(y) == len(c):
        msg = f"domain reference: {len(f)} feature rows, {len(y)} labels, {len(c)} colour rows"
        raise ConfigError(msg)
    if len(f) < 10:
        msg = f"domain reference: need at least 10 training patches, got {len(f)}"
        raise ConfigError(msg)
    k = max(1, min(components, f.shape[1], len(f) - 1))
    pca = PCA(n_components=k, svd_solver="full", random_state=0).fit(f)
    z = pca.transform(f)
    classes = np.unique(y)
    means = np.stack([z[y == cl].mean(axis=0) for cl in classes])
    centred = z - means[np.searchsorted(classes, y)]
    _, feat_prec = _gaussian(centred)
    col_mean, col_prec = _gaussian(c)
    return DomainReference(
        colour_mean=col_mean,
        colour_precision=col_prec,
        pca_mean=np.asarray(pca.mean_, dtype=np.float64),
        pca_components=np.asarray(pca.components_, dtype=np.float64),
        class_means=means,
        feature_precision=feat_prec,
        info={"n_train": len(f), "explained_variance": float(pca.explained_variance_ratio_.sum())},
    )


# --- thresholds --------------------------------------------------------------------------------


def sample_groups(labels: NDArray[np.integer[Any]], cfg: GateFitConfig) -> list[NDArray[np.int64]]:
    """Draw ``cfg.n_groups`` pseudo-inputs (index arrays, cells without replacement within a group)."""
    rng = np.random.default_rng(cfg.seed)
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    if n < cfg.group_size[0]:
        msg = f"domain thresholds: {n} validation patches, fewer than a group of {cfg.group_size[0]}"
        raise ConfigError(msg)
    classes = np.unique(y)
    groups = []
    for i in range(cfg.n_groups):
        size = min(n, int(rng.integers(cfg.group_size[0], cfg.group_size[1] + 1)))
        if i < round(cfg.skewed_share * cfg.n_groups):
            mix = rng.dirichlet(np.full(len(classes), cfg.dirichlet_alpha))
            p = mix[np.searchsorted(classes, y)]
            p = p / np.bincount(np.searchsorted(classes, y))[np.searchsorted(classes, y)]
            p = p / p.sum()
            nonzero = int((p > 0).sum())
            groups.append(rng.choice(n, size=min(size, nonzero), replace=False, p=p))
        else:
            groups.append(rng.choice(n, size=size, replace=False))
    return groups


def group_scores(
    reference: DomainReference,
    colour: NDArray[np.floating[Any]],
    distances: NDArray[np.floating[Any]],
    groups: list[NDArray[np.int64]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Colour and feature scores of each group, as :meth:`DomainReference.judge` computes them."""
    c = np.asarray(colour, dtype=np.float64)
    d = np.asarray(distances, dtype=np.float64)
    col = np.array([reference.colour_distance(c[g]) for g in groups])
    feat = np.array([float(np.median(d[g])) for g in groups])
    return col, feat


def fit_thresholds(
    reference: DomainReference,
    views: dict[tuple[float, float], tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]],
    labels: NDArray[np.integer[Any]],
    cfg: GateFitConfig,
) -> DomainReference:
    """Return ``reference`` with thresholds fitted on validation pseudo-inputs.

    Args:
        reference: the reference from :func:`fit_reference`.
        views: (gamma, brightness) -> (penultimate features N x F, colour statistics N x 6) of the
            same N validation patches under that exposure; every pair of ``cfg.views``.
        labels: class index of each validation patch (for the skewed class mixes).
        cfg: the fitting settings.
    """
    from dataclasses import replace

    missing = [v for v in cfg.views if v not in views]
    if missing:
        msg = f"domain thresholds: no validation view for exposure setting(s) {missing}"
        raise ConfigError(msg)
    groups = sample_groups(labels, cfg)
    view_of = np.random.default_rng([cfg.seed, 1]).integers(0, len(cfg.views), len(groups))
    col = np.zeros(len(groups))
    feat = np.zeros(len(groups))
    for j, v in enumerate(cfg.views):
        feats, colour = views[v]
        pick = np.flatnonzero(view_of == j)
        if len(pick) == 0:
            continue
        c, f = group_scores(reference, colour, reference.feature_distances(feats), [groups[i] for i in pick])
        col[pick], feat[pick] = c, f
    q_col, q_feat = float(np.quantile(col, cfg.quantile)), float(np.quantile(feat, cfg.quantile))
    plain = (1.0, 1.0) if (1.0, 1.0) in views else cfg.views[0]
    cell_d = reference.feature_distances(views[plain][0])
    q_cell = float(np.quantile(cell_d, cfg.cell_quantile))
    if not (math.isfinite(q_col) and math.isfinite(q_feat)) or min(q_col, q_feat) <= 0:
        msg = f"domain thresholds: degenerate validation scores (quantiles {q_col}, {q_feat})"
        raise ConfigError(msg)
    info = {
        **reference.info,
        "fitted_on": "validation",
        "n_validation": len(labels),
        **cfg.to_json(),
        "validation_scores": {
            "colour": {"median": float(np.median(col)), "quantile": q_col, "max": float(col.max())},
            "features": {"median": float(np.median(feat)), "quantile": q_feat, "max": float(feat.max())},
            "cells": {"median": float(np.median(cell_d)), "quantile": q_cell, "view": list(plain)},
        },
        "cell_rule": f"a cell is unfamiliar above the {cfg.cell_quantile:g} quantile of the "
        "validation cells' feature distances (exposure view 1.0/1.0)",
    }
    return replace(
        reference,
        colour_threshold=q_col * cfg.margin,
        feature_threshold=q_feat * cfg.margin,
        cell_threshold=q_cell if q_cell > 0 else math.inf,
        info=info,
    )
