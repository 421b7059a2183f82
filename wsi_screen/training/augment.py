"""Training augmentation on batches of float tensors.

Everything runs batched in torch on the training device (one ``grid_sample`` per batch for all
geometric changes), so augmentation costs little next to the network on a 2-core CPU. Random
numbers come from a CPU generator and are moved to the batch's device, so a seed gives the same
draws on CPU and GPU; only JPEG re-encoding round-trips through the CPU (OpenCV).

Stain-colour augmentation follows Tellez et al.: colour deconvolution into haematoxylin, eosin and
residual optical densities (Ruifrok & Johnston matrix, the one scikit-image uses), a random
per-stain scale and shift, and recombination to RGB. The Shah et al. preprocessing a bundle may
name is part of the evaluation transform, applied at inference too:
:func:`wsi_screen.classifiers.preprocess.shah_preprocess`.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wsi_screen.errors import ConfigError

if TYPE_CHECKING:
    import torch

# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB/residual), as in scikit-image.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_EPS = 1e-6


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (all sampled uniformly per image).

    Attributes:
        rotation_deg: maximum absolute rotation.
        flip: random horizontal and vertical flips.
        shift: maximum translation as a fraction of the side.
        shear: maximum shear factor.
        zoom: maximum relative zoom in or out.
        brightness: maximum additive brightness change (0-1 scale).
        contrast: maximum relative contrast change.
        stain_sigma: Tellez HED perturbation strength (scale 1 +/- s, shift +/- s); 0 disables.
        hue: maximum hue rotation as a fraction of a full turn (YIQ chroma rotation).
        saturation: maximum relative saturation change (chroma scaled by 1 +/- s).
        gamma: maximum absolute log-gamma (gamma drawn from exp(U(-g, g))).
        white_balance: maximum relative per-channel gain change (1 +/- w): white-balance and
            background-tint differences between scanners.
        blur: maximum Gaussian blur sigma in input pixels, applied to half of the images
            (focus differences).
        jpeg: lowest JPEG quality (0: off): half of the images are re-encoded at a quality drawn
            from [jpeg, 95] (scanner and export compression).
        erase: probability of random erasing: one rectangle of 2-15 % of the image, filled with
            noise (occluding neighbours and debris).
        stain_mix: probability that an image takes on part of the stain of another image of the
            batch: its per-stain (HED) optical-density mean and spread move a random fraction of
            the way to the other image's. With batches drawn over several labs this mixes the
            labs' stains, spanning the colours between them (0: off).
    """

    rotation_deg: float = 180.0
    flip: bool = True
    shift: float = 0.1
    shear: float = 0.15
    zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.15
    stain_sigma: float = 0.05
    hue: float = 0.0
    saturation: float = 0.0
    gamma: float = 0.0
    white_balance: float = 0.0
    blur: float = 0.0
    jpeg: int = 0
    erase: float = 0.0
    stain_mix: float = 0.0

    def __post_init__(self) -> None:
        """Check ranges."""
        for name in (
            "shift",
            "shear",
            "zoom",
            "brightness",
            "contrast",
            "stain_sigma",
            "hue",
            "saturation",
            "gamma",
            "white_balance",
            "erase",
            "stain_mix",
        ):
            v = getattr(self, name)
            if not 0 <= v < 1:
                msg = f"augment.{name}={v}; expected 0 <= value < 1"
                raise ConfigError(msg)
        if not 0 <= self.blur <= 10:
            msg = f"augment.blur={self.blur}; expected 0-10 px"
            raise ConfigError(msg)
        if self.jpeg and not 10 <= self.jpeg <= 95:
            msg = f"augment.jpeg={self.jpeg}; expected 0 (off) or a quality of 10-95"
            raise ConfigError(msg)
        if not 0 <= self.rotation_deg <= 180:
            msg = f"augment.rotation_deg={self.rotation_deg}; expected 0-180"
            raise ConfigError(msg)

    def to_json(self) -> dict[str, object]:
        """Return the ranges as a dict (recorded in the bundle recipe)."""
        return asdict(self)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Colour-deconvolve RGB (float 0-1 or uint8, ...x3) into HED optical densities (...x3).

    Densities are natural optical densities (-ln I), the scale on which Tellez et al. define
    their perturbation ranges; negative densities are not clipped, so the transform inverts.
    """
    x = rgb.astype(np.float64)
    if rgb.dtype == np.uint8:
        x /= 255.0
    return np.asarray(-np.log(np.maximum(x, _EPS)) @ HED_FROM_RGB)


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Recombine HED densities into float RGB in 0-1 (inverse of :func:`rgb_to_hed`)."""
    return np.clip(np.exp(-(hed @ RGB_FROM_HED)), 0.0, 1.0)


def _stain_jitter(x: torch.Tensor, sigma: float, gen: torch.Generator | None) -> torch.Tensor:
    """Tellez HED jitter on a float Bx3xHxW batch in 0-1."""
    import torch

    dev, dt = x.device, x.dtype
    hed_from_rgb = torch.as_tensor(HED_FROM_RGB, dtype=dt, device=dev)
    rgb_from_hed = torch.as_tensor(RGB_FROM_HED, dtype=dt, device=dev)
    b = x.shape[0]
    od = -torch.log(x.clamp_min(_EPS)).permute(0, 2, 3, 1)  # BxHxWx3 natural optical density
    hed = od @ hed_from_rgb
    # drawn on the (CPU) generator, then moved: the same stream on every device
    alpha = 1 + (torch.rand(b, 1, 1, 3, generator=gen, dtype=dt).to(dev) * 2 - 1) * sigma
    beta = (torch.rand(b, 1, 1, 3, generator=gen, dtype=dt).to(dev) * 2 - 1) * sigma
    hed = hed * alpha + beta
    rgb = torch.exp(-(hed @ rgb_from_hed)).clamp(0, 1)
    return rgb.permute(0, 3, 1, 2).contiguous()


def _stain_mix(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Move each selected image's HED density statistics part-way to another image's."""
    import torch

    dev, dt = x.device, x.dtype
    b = x.shape[0]
    hed_from_rgb = torch.as_tensor(HED_FROM_RGB, dtype=dt, device=dev)
    rgb_from_hed = torch.as_tensor(RGB_FROM_HED, dtype=dt, device=dev)
    hed = -torch.log(x.clamp_min(_EPS)).permute(0, 2, 3, 1) @ hed_from_rgb  # BxHxWx3
    mu = hed.mean(dim=(1, 2), keepdim=True)
    sd = hed.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
    partner = torch.randperm(b, generator=gen).to(dev)
    chosen = (torch.rand(b, generator=gen) < p).to(dev, dt)
    lam = (torch.rand(b, generator=gen).to(dev, dt) * chosen).view(b, 1, 1, 1)
    mu_t = mu * (1 - lam) + mu[partner] * lam
    sd_t = sd * (1 - lam) + sd[partner] * lam
    hed = (hed - mu) / sd * sd_t + mu_t
    rgb = torch.exp(-(hed @ rgb_from_hed)).clamp(0, 1)
    return rgb.permute(0, 3, 1, 2).contiguous()


# RGB <-> YIQ (NTSC): hue is the angle of the (I, Q) chroma vector, saturation its length.
_YIQ_FROM_RGB = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB_FROM_YIQ = np.linalg.inv(_YIQ_FROM_RGB)


def _colour_jitter(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None) -> torch.Tensor:
    """Hue rotation, saturation, per-channel gain and gamma on a float Bx3xHxW batch in 0-1."""
    import torch

    b, dev, dt = x.shape[0], x.device, x.dtype

    def u(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) * 2 - 1).to(dev, dt)

    if cfg.hue > 0 or cfg.saturation > 0:
        ang = u(b) * cfg.hue * 2 * math.pi
        sat = 1 + u(b) * cfg.saturation
        cos, sin = torch.cos(ang) * sat, torch.sin(ang) * sat
        rot = torch.zeros(b, 3, 3, device=dev, dtype=dt)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        to_yiq = torch.as_tensor(_YIQ_FROM_RGB, device=dev, dtype=dt)
        to_rgb = torch.as_tensor(_RGB_FROM_YIQ, device=dev, dtype=dt)
        m = to_rgb @ rot @ to_yiq  # Bx3x3
        x = torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)
    if cfg.white_balance > 0:
        x = (x * (1 + u(b, 3, 1, 1) * cfg.white_balance)).clamp(0, 1)
    if cfg.gamma > 0:
        x = x.clamp_min(_EPS) ** torch.exp(u(b, 1, 1, 1) * cfg.gamma)
    return x


def _random_blur(x: torch.Tensor, max_sigma: float, gen: torch.Generator | None) -> torch.Tensor:
    """Gaussian blur with sigma ~ U(0, max_sigma) on a random half of the batch."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - torch convention

    b = x.shape[0]
    chosen = torch.nonzero(torch.rand(b, generator=gen) < 0.5).flatten()
    radius = max(1, math.ceil(3 * max_sigma))
    offs = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    for i in chosen.tolist():
        sigma = float(torch.rand(1, generator=gen)) * max_sigma
        if sigma < 0.3:
            continue
        k = torch.exp(-(offs**2) / (2 * sigma**2))
        k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
        img = F.pad(x[i : i + 1], (radius, radius, radius, radius), mode="reflect")
        img = F.conv2d(img, k, groups=3)
        img = F.conv2d(img, k.transpose(2, 3), groups=3)
        x[i] = img[0]
    return x


def _random_jpeg(x: torch.Tensor, min_quality: int, gen: torch.Generator | None) -> torch.Tensor:
    """Re-encode a random half of the batch as JPEG at a quality ~ U(min_quality, 95)."""
    import cv2
    import torch

    chosen = torch.nonzero(torch.rand(x.shape[0], generator=gen) < 0.5).flatten()
    for i in chosen.tolist():
        q = int(min_quality + float(torch.rand(1, generator=gen)) * (95 - min_quality))
        img = (x[i].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if dec is not None:
            x[i] = torch.from_numpy(dec[:, :, ::-1].copy()).to(x).permute(2, 0, 1) / 255
    return x


def _random_erase(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """With probability ``p`` per image, fill one rectangle (2-15 % of the area) with noise."""
    import torch

    b, _, h, w = x.shape
    for i in torch.nonzero(torch.rand(b, generator=gen) < p).flatten().tolist():
        area = (0.02 + 0.13 * float(torch.rand(1, generator=gen))) * h * w
        aspect = math.exp((float(torch.rand(1, generator=gen)) * 2 - 1) * math.log(3))
        eh = min(h, max(1, round(math.sqrt(area * aspect))))
        ew = min(w, max(1, round(math.sqrt(area / aspect))))
        top = int(float(torch.rand(1, generator=gen)) * (h - eh + 1))
        left = int(float(torch.rand(1, generator=gen)) * (w - ew + 1))
        x[i, :, top : top + eh, left : left + ew] = torch.rand(3, eh, ew, generator=gen).to(x)
    return x


def _affine_matrices(b: int, cfg: AugmentConfig, gen: torch.Generator | None) -> torch.Tensor:
    import torch

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    ang = u(-cfg.rotation_deg, cfg.rotation_deg) * math.pi / 180
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    sh = u(-cfg.shear, cfg.shear)
    shear = torch.eye(2).repeat(b, 1, 1)
    shear[:, 0, 1] = sh
    zoom = u(1 - cfg.zoom, 1 + cfg.zoom)
    flips = torch.ones(b, 2)
    if cfg.flip:
        flips = torch.where(torch.rand(b, 2, generator=gen) < 0.5, -1.0, 1.0)
    a = rot @ shear @ torch.diag_embed(flips / zoom[:, None])
    t = torch.stack([u(-cfg.shift, cfg.shift), u(-cfg.shift, cfg.shift)], 1) * 2
    return torch.cat([a, t[:, :, None]], 2)


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly augment a float Bx3xHxW batch of RGB in 0-1; returns the same shape, in 0-1.

    Example:
        >>> import torch
        >>> augment_batch(torch.rand(2, 3, 32, 32), AugmentConfig()).shape
        torch.Size([2, 3, 32, 32])
    """
    import torch
    import torch.nn.functional as F  # noqa: N812 - torch convention

    b = x.shape[0]
    theta = _affine_matrices(b, cfg, generator).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # reflection keeps the background texture instead of black corners after rotation
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.stain_mix > 0 and b > 1:
        x = _stain_mix(x, cfg.stain_mix, generator)
    if cfg.stain_sigma > 0:
        x = _stain_jitter(x, cfg.stain_sigma, generator)
    if cfg.brightness > 0 or cfg.contrast > 0:
        br = (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * cfg.brightness
        ct = 1 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * cfg.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * ct.to(x) + mean + br.to(x)).clamp(0, 1)
    if cfg.hue > 0 or cfg.saturation > 0 or cfg.white_balance > 0 or cfg.gamma > 0:
        x = _colour_jitter(x, cfg, generator)
    if cfg.blur > 0:
        x = _random_blur(x, cfg.blur, generator)
    if cfg.jpeg:
        x = _random_jpeg(x, cfg.jpeg, generator)
    if cfg.erase > 0:
        x = _random_erase(x, cfg.erase, generator)
    return x
