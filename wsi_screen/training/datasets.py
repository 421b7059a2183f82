"""Labelled patch collections: the Matek layout (``CODE/.../*.jpg``), splits and image loading.

Labels come from the top-level class folder (nested subfolders allowed) or, for data sets such as
PBC, from the file-name prefix; a :class:`~wsi_screen.training.schemes.ClassScheme` then maps
them to target classes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_screen.classifiers.preprocess import INTERPOLATIONS
from wsi_screen.classifiers.preprocess import resize_patches
from wsi_screen.classifiers.preprocess import shah_preprocess
from wsi_screen.errors import InputError
from wsi_screen.training.schemes import ClassScheme

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class LabelledImage:
    """One image file with its source label and (when the scheme maps it) its target class."""

    path: Path
    source_label: str
    target: str | None
    source: str = ""
    """Name of the training source (lab) the image comes from; empty for a single folder."""
    scale: float = 1.0
    """Source pixel size / model pixel size: the image is resampled by it to the model's scale."""


@dataclass(frozen=True)
class PatchSet:
    """Images of a data folder mapped through a scheme.

    Attributes:
        root: the data folder.
        items: images with a target class (used for training/evaluation).
        dropped: source label -> count of images dropped on purpose by the scheme.
        unmapped: source label -> images whose label the scheme does not know.
        class_names: target classes, in output order.
    """

    root: Path
    items: tuple[LabelledImage, ...]
    dropped: dict[str, int]
    unmapped: dict[str, list[Path]]
    class_names: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        """Integer class index of every item."""
        index = {c: i for i, c in enumerate(self.class_names)}
        return np.array([index[it.target] for it in self.items if it.target], dtype=np.int64)

    @property
    def paths(self) -> list[Path]:
        """Paths of the items."""
        return [it.path for it in self.items]

    def counts(self) -> dict[str, int]:
        """Images per target class (classes with zero images included)."""
        c = Counter(it.target for it in self.items)
        return {name: int(c.get(name, 0)) for name in self.class_names}

    @property
    def scales(self) -> list[float]:
        """Resampling factor (source / model pixel size) of every item."""
        return [it.scale for it in self.items]

    @property
    def strata(self) -> np.ndarray:
        """One integer per item for (source, class): what splits stratify and sampling balances."""
        keys = [(it.source, it.target) for it in self.items]
        index = {k: i for i, k in enumerate(sorted(set(keys), key=str))}
        return np.array([index[k] for k in keys], dtype=np.int64)

    def summary(self) -> dict[str, object]:
        """JSON-serialisable summary (recorded in bundles and metrics)."""
        out: dict[str, object] = {
            "root": str(self.root),
            "n_images": len(self.items),
            "per_class": self.counts(),
            "dropped": dict(self.dropped),
            "unmapped": {k: len(v) for k, v in self.unmapped.items()},
        }
        sources = sorted({it.source for it in self.items if it.source})
        if sources:
            out["per_source"] = {
                s: {
                    name: n
                    for name, n in Counter(it.target for it in self.items if it.source == s).items()
                    if name
                }
                for s in sources
            }
        return out

    def subset(self, index: np.ndarray | list[int]) -> PatchSet:
        """Return the items at ``index`` (same classes)."""
        return PatchSet(
            root=self.root,
            items=tuple(self.items[i] for i in index),
            dropped=self.dropped,
            unmapped=self.unmapped,
            class_names=self.class_names,
        )


def source_label(path: Path, root: Path, label_from: str) -> str:
    """Return the raw label of ``path``: its top-level folder under ``root`` or its name prefix."""
    if label_from == "prefix":
        return path.stem.split("_")[0].upper()
    rel = path.relative_to(root)
    if len(rel.parts) < 2:
        msg = f"{path}: image lies directly in {root}; expected class folders (CODE/.../*.jpg)"
        raise InputError(msg)
    return rel.parts[0]


def scan_folder(root: Path | str, scheme: ClassScheme | None = None) -> PatchSet:
    """Find labelled images under ``root`` and map their labels through ``scheme``.

    Without a scheme every class folder becomes its own class (sorted names).

    Raises:
        InputError: ``root`` is not a folder or holds no images.

    Example:
        >>> ps = scan_folder("../shared/data/matek_bm")  # doctest: +SKIP
        >>> ps.class_names  # doctest: +SKIP
        ('ART', 'BLA', 'EOS', 'LYT', 'MON', 'NGS', 'NIF', 'PMO')
    """
    from wsi_screen.training.schemes import identity_scheme

    root = Path(root)
    if not root.is_dir():
        msg = f"{root}: data folder not found"
        raise InputError(msg)
    # hidden files and folders (.DS_Store debris, ._* resource forks) are not images
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        msg = f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found"
        raise InputError(msg)
    label_from = scheme.label_from if scheme else "folder"
    raw = [(p, source_label(p, root, label_from)) for p in files]
    if scheme is None:
        scheme = identity_scheme([lab for _, lab in raw])
    items: list[LabelledImage] = []
    dropped: Counter[str] = Counter()
    unmapped: dict[str, list[Path]] = {}
    for p, lab in raw:
        target = scheme.map(lab)
        if target is not None:
            items.append(LabelledImage(p, lab, target))
        elif scheme.is_dropped(lab):
            dropped[lab] += 1
        else:
            unmapped.setdefault(lab, []).append(p)
    for lab, paths in unmapped.items():
        log.warning("%s: %d image(s) labelled %s are not in scheme %s", root, len(paths), lab, scheme.name)
    return PatchSet(root, tuple(items), dict(dropped), unmapped, scheme.class_names)


def stratified_split(labels: np.ndarray, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test) keeping class proportions (scikit-learn, fixed seed)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def kfold_splits(labels: np.ndarray, *, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train, validation) index pairs."""
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in skf.split(np.zeros(len(labels)), labels)]


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3, as ``run`` reads fields (truncation is an error).

    Raises:
        InputError: the file cannot be decoded, is truncated or is empty.
    """
    from wsi_screen.sources.base import significant_bits
    from wsi_screen.sources.base import to_rgb8
    from wsi_screen.sources.field import read_image_file

    arr, _ = read_image_file(Path(path))
    rgb = to_rgb8(arr, where=str(path), bits=significant_bits(arr))
    if rgb.size == 0:
        msg = f"{path}: image has zero size"
        raise InputError(msg)
    return rgb


def fit_patch(rgb: np.ndarray, patch_size_px: int, *, scale: float | None = 1.0) -> np.ndarray:
    """Bring an image to ``patch_size_px`` square.

    Args:
        rgb: uint8 HxWx3 image.
        patch_size_px: output side.
        scale: source mpp / model mpp: the image is rescaled by it, then centre-cropped or
            reflect-padded, so the patch covers the model's physical field. ``None`` resizes the
            whole image to the patch size whatever its scale (the naive approach).
    """
    import cv2

    if scale is None:
        if rgb.shape[0] == patch_size_px and rgb.shape[1] == patch_size_px:
            return rgb
        return cv2.resize(rgb, (patch_size_px, patch_size_px), interpolation=cv2.INTER_AREA)
    if scale != 1.0:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, size, interpolation=interp)
    h, w = rgb.shape[:2]
    if h == patch_size_px and w == patch_size_px:
        return rgb
    pad_y = max(0, patch_size_px - h)
    pad_x = max(0, patch_size_px - w)
    if pad_y or pad_x:
        rgb = cv2.copyMakeBorder(
            rgb,
            pad_y // 2,
            pad_y - pad_y // 2,
            pad_x // 2,
            pad_x - pad_x // 2,
            cv2.BORDER_REFLECT_101,
        )
        h, w = rgb.shape[:2]
    y0 = (h - patch_size_px) // 2
    x0 = (w - patch_size_px) // 2
    return np.ascontiguousarray(rgb[y0 : y0 + patch_size_px, x0 : x0 + patch_size_px])


def resize_to_input(patches: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Resize uint8 NxHxWx3 patches to ``size`` the way the evaluation transform does."""
    import cv2

    if patches.shape[1] == size and patches.shape[2] == size:
        return patches
    code = INTERPOLATIONS.get(interpolation)
    if code is None:
        msg = f"interpolation {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}"
        raise InputError(msg)
    out = np.empty((len(patches), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(patches):
        out[i] = cv2.resize(p, (size, size), interpolation=code)
    return out


def load_patches(
    paths: list[Path],
    *,
    patch_size_px: int,
    scale: float | None = 1.0,
    input_size: int | None = None,
    interpolation: str = "bilinear",
    preprocess: str | None = None,
    errors: list[tuple[int, str]] | None = None,
    progress: str | None = None,
    scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Load images as uint8 Nx S x S x3, S = ``input_size`` when given else ``patch_size_px``.

    Args:
        paths: image files.
        patch_size_px: side of the patch at the model's scale.
        scale: source pixel size / model pixel size (None: resize whole images to the patch).
        input_size: when given, resize each patch as the evaluation transform does.
        interpolation: resize interpolation of the model (``bilinear`` or ``area``).
        preprocess: ``shah`` to apply NLM denoising + sharpening (on the full patch).
        errors: when given, an unreadable image is recorded here as (index, message) and its row
            left black instead of raising :class:`InputError`.
        progress: when given, the label of a progress bar (tqdm, stderr, on a terminal only)
            counting the images loaded.
        scales: one scale per path (images of several sources at their own pixel sizes);
            overrides ``scale``.
    """
    from tqdm.auto import tqdm

    side = input_size or patch_size_px
    out = np.empty((len(paths), side, side, 3), dtype=np.uint8)
    bar = tqdm(paths, desc=progress, unit="image", leave=False, disable=True if progress is None else None)
    for i, p in enumerate(bar):
        try:
            rgb = read_rgb(p)
        except InputError as e:
            if errors is None:
                raise
            errors.append((i, str(e)))
            out[i] = 0
            continue
        patch = fit_patch(rgb, patch_size_px, scale=scale if scales is None else scales[i])
        if preprocess == "shah":
            patch = shah_preprocess(patch)
        if input_size:
            patch = resize_patches(patch[None], input_size, interpolation)[0]
        out[i] = patch
    return out
