"""Calibrate an existing bundle: temperature and out-of-domain reference, written into the bundle.

:func:`calibrate_bundle` finds the split the bundle was trained with (its ``split.json``, or the
same seeded stratified split rebuilt from the recipe in its provenance and checked against its
held-out list and per-class counts), then

1. fits the temperature on the **validation** logits (:mod:`wsi_screen.training.temperature`);
2. fits the domain reference on the **training** patches and its thresholds on validation
   pseudo-inputs (:mod:`wsi_screen.training.domain_fit`);
3. writes the reference tensors to ``domain-<sha>.safetensors`` and the ``calibration`` and
   ``domain`` blocks into ``model.json``, each atomically; model.json always names a complete
   reference file, and a stale one is removed only after model.json points away from it.

The held-out test share is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.bundle import MODEL_JSON
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.domain import colour_stats
from wsi_screen.errors import ConfigError
from wsi_screen.errors import ModelBundleError
from wsi_screen.io import atomic_write_bytes
from wsi_screen.io import atomic_write_text
from wsi_screen.textfiles import read_file_list
from wsi_screen.textfiles import read_json_object
from wsi_screen.training.datasets import PatchSet
from wsi_screen.training.datasets import load_patches
from wsi_screen.training.datasets import stratified_split
from wsi_screen.training.domain_fit import GateFitConfig
from wsi_screen.training.domain_fit import fit_reference
from wsi_screen.training.domain_fit import fit_thresholds
from wsi_screen.training.domain_fit import perturb_exposure
from wsi_screen.training.manifest import relative_names
from wsi_screen.training.manifest import scan_data
from wsi_screen.training.schemes import ClassScheme
from wsi_screen.training.temperature import calibrate_logits

__all__ = ["BundleSplit", "Outputs", "bundle_split", "calibrate_bundle", "forward_outputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outputs:
    """What one forward pass gives per patch: logits, penultimate features, colour statistics."""

    logits: NDArray[np.float32]
    features: NDArray[np.float32]
    colour: NDArray[np.float32]


def forward_outputs(clf: Any, patches: NDArray[np.uint8]) -> Outputs:
    """Logits, penultimate features and colour statistics of uint8 patches in one backbone pass.

    ``clf`` is a :class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier`; its transform
    (preprocessing, resize, normalisation, precision) is the screening one.
    """
    import torch

    logits, feats = [], []
    with torch.inference_mode():
        for s in range(0, len(patches), clf.batch_size):
            x = clf.to_tensor(patches[s : s + clf.batch_size])
            with torch.autocast(device_type=clf.device.type, dtype=clf.dtype, enabled=clf.dtype is not None):
                f = clf.model.forward_features(x)
                pre = clf.model.forward_head(f, pre_logits=True)
                z = clf.model.forward_head(f)
            feats.append(pre.float().flatten(1).cpu().numpy())
            logits.append(z.float().cpu().numpy())
    n_cls = len(clf.class_names)
    return Outputs(
        logits=np.concatenate(logits) if logits else np.zeros((0, n_cls), np.float32),
        features=np.concatenate(feats) if feats else np.zeros((0, 0), np.float32),
        colour=colour_stats(patches) if len(patches) else np.zeros((0, 6), np.float32),
    )


def outputs_of_files(
    clf: Any,
    bundle: ModelBundle,
    paths: list[Path],
    *,
    chunk: int = 256,
    scales: list[float] | None = None,
) -> Outputs:
    """:func:`forward_outputs` over image files, decoded ``chunk`` at a time (memory stays small).

    ``scales``: each image's source / model pixel size (several sources), else 1.
    """
    parts = []
    for s in range(0, len(paths), chunk):
        patches = load_patches(
            paths[s : s + chunk],
            patch_size_px=bundle.patch_size_px,
            scales=None if scales is None else scales[s : s + chunk],
        )
        parts.append(forward_outputs(clf, patches))
    return Outputs(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in ("logits", "features", "colour"))
    )


@dataclass(frozen=True)
class BundleSplit:
    """The training and validation images of a bundle (the test share is only counted)."""

    train: PatchSet
    validation: PatchSet
    n_test: int
    source: str


def _read_split_json(path: Path, ps: PatchSet, names: list[str]) -> tuple[list[int], list[int], set[str]]:
    data = read_json_object(path, error=ConfigError)
    val = data.get("validation") or []
    if len(val) != 1:
        msg = f"{path}: calibration needs exactly one validation split, found {len(val)}"
        raise ConfigError(msg)
    rel = {name: i for i, name in enumerate(names)}
    missing = [p for p in val[0] if p not in rel]
    if missing:
        msg = f"{path}: {len(missing)} validation file(s) not under {ps.root}, e.g. {missing[0]}"
        raise ConfigError(msg)
    val_idx = sorted(rel[p] for p in val[0])
    test = {str(p) for p in data.get("test", [])}
    held = set(val[0]) | test
    return [i for r, i in rel.items() if r not in held], val_idx, test


def bundle_split(
    bundle: ModelBundle, data_root: Path | str, *, scheme: ClassScheme | None = None
) -> BundleSplit:
    """Rebuild the training/validation split ``bundle`` was trained with from ``data_root``.

    Uses ``split.json`` in the bundle folder when present; otherwise the recipe's seed, test and
    validation fractions (the same two seeded stratified splits as training), and then checks the
    rebuilt test share against the bundle's held-out list (``provenance.heldout_test_list``).
    Either way the per-class counts must equal those recorded in the bundle's provenance.

    Raises:
        ConfigError: no validation split, classes or counts that do not match, or a k-fold bundle.
    """
    folder = bundle.path or Path()
    data_root = Path(data_root)
    ps, manifest = scan_data(data_root, bundle.mpp, scheme)
    names = relative_names(ps, manifest)
    if ps.class_names != bundle.class_names:
        msg = (
            f"{data_root}: classes {list(ps.class_names)} differ from the model's {list(bundle.class_names)}"
        )
        raise ConfigError(msg + " (give the training --scheme)")
    recipe = bundle.provenance.get("recipe", {})
    if (folder / "split.json").is_file():
        tr, va, test = _read_split_json(folder / "split.json", ps, names)
        source = f"{folder / 'split.json'}"
    else:
        if manifest is not None:
            msg = f"{folder}: a bundle trained on a manifest needs its split.json"
            raise ConfigError(msg)
        if int(recipe.get("folds", 1)) != 1 or not float(recipe.get("val_fraction", 0)) > 0:
            msg = f"{folder / MODEL_JSON}: recipe has no single validation split (folds 1, val_fraction > 0)"
            raise ConfigError(msg)
        seed, tf, vf = (
            int(recipe.get("seed", 0)),
            float(recipe.get("test_fraction", 0)),
            float(recipe["val_fraction"]),
        )
        pool = np.arange(len(ps.items))
        test_idx = pool[:0]
        if tf > 0:
            pool, test_idx = stratified_split(ps.labels, test_fraction=tf, seed=seed)
        a, b = stratified_split(ps.labels[pool], test_fraction=vf, seed=seed)
        tr, va = [int(i) for i in pool[a]], [int(i) for i in pool[b]]
        test = {str(ps.items[i].path.relative_to(ps.root)) for i in test_idx}
        source = f"rebuilt from the recipe (seed {seed}, test {tf}, validation {vf})"
        listed = bundle.provenance.get("heldout_test_list")
        if listed and (folder / str(listed)).is_file():
            wanted = set(read_file_list(folder / str(listed), error=ConfigError))
            if wanted != test:
                msg = f"{folder / str(listed)}: rebuilt test share differs from the listed one ({len(wanted ^ test)} files)"
                raise ConfigError(msg)
            source += f", test share equal to {listed}"
    split = BundleSplit(ps.subset(tr), ps.subset(va), len(test), source)
    recorded = bundle.provenance.get("data", {})
    for name, part in (("train", split.train), ("validation", split.validation)):
        want = recorded.get(name, {}).get("per_class")
        if want is not None and {k: int(v) for k, v in want.items()} != part.counts():
            msg = f"{folder / MODEL_JSON}: {name} counts {part.counts()} differ from those recorded ({want})"
            raise ConfigError(msg)
    return split


def calibrate_bundle(
    bundle_dir: Path | str,
    data_root: Path | str,
    *,
    scheme: ClassScheme | None = None,
    gate: GateFitConfig | None = None,
    device: str = "auto",
    threads: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Fit temperature and domain reference for the bundle in ``bundle_dir``; write them into it.

    Args:
        bundle_dir: a bundle folder trained with a validation split.
        data_root: the data folder it was trained on.
        scheme: the class scheme of training (None: class folders are the classes).
        gate: domain-gate fitting settings.
        device: compute device.
        threads: CPU threads (None: all).
        batch_size: patches per forward pass.

    Returns:
        ``{"calibration": ..., "domain": ..., "split": ...}`` as written to model.json.
    """
    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    gate = gate or GateFitConfig()
    folder = Path(bundle_dir)
    bundle = ModelBundle.load(folder)
    split = bundle_split(bundle, data_root, scheme=scheme)
    log.info(
        "%s: %d training, %d validation patches (%s)",
        folder,
        len(split.train.items),
        len(split.validation.items),
        split.source,
    )
    clf = TimmClassifier(bundle, device=device, threads=threads, batch_size=batch_size)
    clf.model.eval()
    train = outputs_of_files(clf, bundle, split.train.paths, scales=split.train.scales)
    val_patches = load_patches(
        split.validation.paths, patch_size_px=bundle.patch_size_px, scales=split.validation.scales
    )
    views = {}
    for g, b in gate.views:
        out = forward_outputs(
            clf, val_patches if (g, b) == (1.0, 1.0) else perturb_exposure(val_patches, g, b)
        )
        views[(g, b)] = out
    clean = views.get((1.0, 1.0)) or forward_outputs(clf, val_patches)
    y_val = split.validation.labels
    cal = calibrate_logits(clean.logits, y_val, fitted_on="validation")
    ref = fit_reference(train.features, split.train.labels, train.colour, components=gate.components)
    skipped: list[str] = []
    try:
        ref = fit_thresholds(ref, {v: (o.features, o.colour) for v, o in views.items()}, y_val, gate)
    except ConfigError as e:  # too few validation patches: fit what can be fitted, say what was not
        skipped.append(f"domain reference and unfamiliar-cell threshold not fitted ({e})")
    weights_sha = bundle.sha256()
    meta_path = folder / MODEL_JSON
    data = read_json_object(meta_path, error=ModelBundleError)  # read bounded, as ModelBundle.load does
    old = data.get("domain", {}).get("file") if isinstance(data.get("domain"), dict) else None
    data["calibration"] = {**cal.to_json(), "weights_sha256": weights_sha, "split": split.source}
    name = None
    if skipped:
        data.pop("domain", None)  # a reference fitted for other weights must not stay
    else:
        blob = ref.tensor_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        name = f"domain-{digest[:12]}.safetensors"
        atomic_write_bytes(folder / name, blob)
        data["domain"] = {
            **ref.to_json(name),
            "sha256": digest,
            "weights_sha256": weights_sha,
            "split": split.source,
        }
    atomic_write_text(meta_path, json.dumps(data, indent=2) + "\n")
    if old and old != name and (folder / old).is_file() and Path(old).name == old:
        (folder / old).unlink()
    log.info(
        "%s: temperature %.3f (ECE %.4f -> %.4f on validation); domain reference %s",
        folder,
        cal.temperature,
        cal.ece_before or 0,
        cal.ece_after or 0,
        name or "skipped",
    )
    return {
        "calibration": data["calibration"],
        "domain": data.get("domain"),
        "split": split.source,
        "skipped": skipped,
    }
