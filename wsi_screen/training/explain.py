"""Explanations of single-patch decisions (Grad-CAM, SmoothGrad) and a 2-D feature embedding.

Both maps use timm's split of every model into ``forward_features`` (a B x C x h x w map for
CNNs) and ``forward_head``, so no layer names are hard-coded. Gradients are taken in fp32.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from wsi_screen.errors import ConfigError
from wsi_screen.io import atomic_path

if TYPE_CHECKING:
    import torch

    from wsi_screen.classifiers.timm_classifier import TimmClassifier

log = logging.getLogger(__name__)

METHODS = ("gradcam", "smoothgrad")


@dataclass(frozen=True)
class Explanation:
    """A saliency map for one patch.

    Attributes:
        map: float32 S x S map in 0-1 at the patch size (S = patch_size_px).
        predicted: predicted class code.
        target: class the map explains (the predicted one unless asked otherwise).
        probs: class probabilities.
    """

    map: np.ndarray
    predicted: str
    target: str
    probs: np.ndarray


def _normalise(m: np.ndarray) -> np.ndarray:
    m = m - m.min()
    top = m.max()
    return (m / top if top > 0 else m).astype(np.float32)


def _upsample(m: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def gradcam(model: Any, x: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM of class ``target`` on the last feature map, for a 1 x 3 x H x W input.

    Raises:
        ConfigError: the architecture's features are not a spatial map (e.g. a ViT).
    """
    import torch

    feats = model.forward_features(x)
    if feats.ndim != 4:
        msg = (
            f"Grad-CAM needs a B x C x h x w feature map; {type(model).__name__} gives "
            f"{tuple(feats.shape)}; use --method smoothgrad"
        )
        raise ConfigError(msg)
    feats.retain_grad()
    logits = model.forward_head(feats)
    model.zero_grad(set_to_none=True)
    logits[0, target].backward()
    assert feats.grad is not None  # noqa: S101 - set by backward above
    weights = feats.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * feats).sum(1))[0]
    return cam.detach().float().cpu().numpy()


def smoothgrad(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: int,
    *,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
) -> np.ndarray:
    """SmoothGrad: mean absolute input gradient over noisy copies (max over colour channels)."""
    import torch

    gen = torch.Generator(device=x.device).manual_seed(seed)
    sigma = noise * float(x.max() - x.min())
    total = torch.zeros_like(x)
    for _ in range(samples):
        xn = (x + sigma * torch.randn(x.shape, generator=gen, device=x.device)).requires_grad_()
        model.zero_grad(set_to_none=True)
        model(xn)[0, target].backward()
        assert xn.grad is not None  # noqa: S101 - set by backward above
        total += xn.grad.abs()
    return (total / samples)[0].amax(0).detach().float().cpu().numpy()


def explain_patches(
    clf: TimmClassifier,
    patches: np.ndarray,
    *,
    method: str = "gradcam",
    target: str | None = None,
    samples: int = 16,
) -> list[Explanation]:
    """Explain the classification of uint8 N x S x S x 3 patches (S = the bundle's patch size).

    Args:
        clf: an inference engine built from the bundle (its transform is reused).
        patches: RGB uint8 patches at the bundle's patch size.
        method: ``gradcam`` or ``smoothgrad``.
        target: class code to explain; default the predicted class.
        samples: noisy copies averaged by SmoothGrad.

    Example:
        >>> exps = explain_patches(TimmClassifier(bundle), patches)  # doctest: +SKIP
        >>> exps[0].map.shape  # doctest: +SKIP
        (250, 250)
    """
    import torch

    if method not in METHODS:
        msg = f"--method {method!r}; expected one of {', '.join(METHODS)}"
        raise ConfigError(msg)
    names = list(clf.class_names)
    if target is not None and target not in names:
        msg = f"target class {target!r} is not in the model ({', '.join(names)})"
        raise ConfigError(msg)
    probs = clf.classify_arrays(patches)
    model = clf.model
    model.eval()
    out = []
    for i, patch in enumerate(patches):
        pred = int(probs[i].argmax())
        t = names.index(target) if target else pred
        x = clf.to_tensor(patch[None]).float().contiguous()
        with torch.enable_grad():
            m = gradcam(model, x, t) if method == "gradcam" else smoothgrad(model, x, t, samples=samples)
        out.append(Explanation(_normalise(_upsample(m, patch.shape[0])), names[pred], names[t], probs[i]))
    return out


def overlay_figure(patch: np.ndarray, exp: Explanation, path: Path, *, title: str = "") -> None:
    """Write patch and map side by side (plus the overlay) as a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.8))
    axes = fig.subplots(1, 3)
    axes[0].imshow(patch)
    axes[0].set_title(title or "patch", fontsize=8)
    axes[1].imshow(exp.map, cmap="inferno", vmin=0, vmax=1)
    axes[1].set_title(f"map for {exp.target}", fontsize=8)
    axes[2].imshow(patch)
    axes[2].imshow(exp.map, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title(f"predicted {exp.predicted} ({exp.probs.max():.2f})", fontsize=8)
    for ax in axes:
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def penultimate_features(clf: TimmClassifier, patches: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Pooled pre-logit features (N x D, float32) of uint8 patches."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(patches), batch_size):
            x = clf.to_tensor(patches[s : s + batch_size])
            if clf.dtype is not None:
                with torch.autocast(device_type=clf.device.type, dtype=clf.dtype):
                    f = clf.model.forward_head(clf.model.forward_features(x), pre_logits=True)
            else:
                f = clf.model.forward_head(clf.model.forward_features(x), pre_logits=True)
            out.append(f.float().flatten(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def embed_2d(features: np.ndarray, *, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """Project features to 2-D with UMAP when installed (``auto``/``umap``), else PCA.

    Returns:
        N x 2 coordinates and the name of the method used.
    """
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(features)
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                from wsi_screen.errors import MissingDependencyError

                msg = "UMAP is not installed: pip install 'wsi-screen[umap]' or use --embed pca"
                raise MissingDependencyError(msg) from None
        else:
            n = min(15, max(2, len(z) - 1))
            reducer = umap.UMAP(n_neighbors=n, random_state=seed, n_jobs=1)
            return np.asarray(reducer.fit_transform(z), dtype=np.float32), "umap"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(z).astype(np.float32), "pca"


def plot_embedding(xy: np.ndarray, labels: list[str], path: Path, *, title: str) -> None:
    """Scatter the 2-D embedding coloured by class and write it as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot()
    import matplotlib as mpl

    cmap = mpl.colormaps["tab20"]
    for k, c in enumerate(sorted(set(labels))):
        m = np.array([lab == c for lab in labels])
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(k % 20), label=f"{c} ({m.sum()})")
    ax.legend(fontsize=7, markerscale=2, ncol=2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
