"""Batched inference with a timm model from a bundle: uint8 patches in, probabilities out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.domain import COLOUR_STATS
from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.classifiers.domain import colour_stats
from wsi_screen.classifiers.fuse import fold_batchnorm
from wsi_screen.classifiers.onnx_backend import BACKENDS
from wsi_screen.classifiers.onnx_backend import OnnxForward
from wsi_screen.classifiers.openvino_backend import OpenVinoForward
from wsi_screen.classifiers.preprocess import resize_patches
from wsi_screen.classifiers.preprocess import shah_preprocess
from wsi_screen.device import autocast_dtype
from wsi_screen.device import default_batch_size
from wsi_screen.device import keep_freed_memory
from wsi_screen.device import select_device
from wsi_screen.device import set_threads
from wsi_screen.errors import ConfigError
from wsi_screen.types import CellCalls
from wsi_screen.types import PatchBatch

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class TimmClassifier:
    """A patch classifier built from a :class:`ModelBundle`.

    Patches arrive as RGB uint8 crops of ``bundle.patch_size_px`` at the bundle's mpp; they are
    preprocessed when the bundle says so (``bundle.preprocess``), resized to ``bundle.input_size``
    and normalised with the bundle's mean/std, exactly as in training. On CPUs with bf16 units inference runs under bf16 autocast with channels_last; on
    CUDA under AMP; elsewhere in fp32. BatchNorm is folded into the convolutions at load
    (:func:`~wsi_screen.classifiers.fuse.fold_batchnorm`; ``fold_bn=False`` keeps the network as
    trained, e.g. to measure what folding changes).

    Example:
        >>> clf = TimmClassifier(ModelBundle.load("wsi_screen/models/default"))  # doctest: +SKIP
        >>> probs = clf.classify_arrays(patches)  # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        device: str = "auto",
        batch_size: int | None = None,
        threads: int | None = None,
        reduced_precision: bool = True,
        backend: str = "torch",
        fold_bn: bool = True,
    ) -> None:
        import torch

        self.bundle = bundle
        self.class_names = bundle.class_names
        self.patch_size_px = bundle.patch_size_px
        if backend not in BACKENDS:
            msg = f"classify.backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
            raise ConfigError(msg)
        if backend != "torch" and device not in ("auto", "cpu"):
            msg = f"classify.backend {backend!r} runs on the CPU; device {device!r} needs backend 'torch'"
            raise ConfigError(msg)
        self.backend = backend
        self.device = select_device("cpu" if backend != "torch" else device)
        if self.device.type == "cpu":
            set_threads(threads)
            keep_freed_memory()
        self.batch_size = batch_size or default_batch_size(self.device)
        """Patches per forward pass (None or 0 at construction: :func:`~wsi_screen.device.default_batch_size`)."""
        reduced = autocast_dtype(self.device, allow_reduced=reduced_precision)
        self.dtype = reduced if backend == "torch" else None
        """torch autocast dtype (None: fp32, or a back-end other than torch)."""
        model = bundle.create_model()
        self.folded_batchnorms = 0
        if fold_bn:  # BatchNorm folded into the convolutions (checked against the unfolded network)
            model, self.folded_batchnorms = fold_batchnorm(model, bundle.input_size)
        # Any: a timm model (forward_features / forward_head), which torch's stubs do not describe
        self.model: Any = model.to(self.device).to(memory_format=torch.channels_last)
        self._mean = torch.tensor(bundle.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(bundle.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.name = bundle.name or (bundle.path.name if bundle.path else bundle.architecture)
        self._runtime: Any = None
        """The network on another runtime (``(logits, features)`` of an NCHW float32 array), or None: torch."""
        if backend == "onnx":
            self._runtime = OnnxForward(model, bundle.input_size, bundle.sha256(), torch.get_num_threads())
        elif backend == "openvino":
            bf16 = reduced is not None  # the CPU has bf16 units and reduced precision is on
            self._runtime = OpenVinoForward(
                model, bundle.input_size, bundle.sha256(), torch.get_num_threads(), bf16=bf16
            )
        self.domain: DomainReference | None = None
        if bundle.domain is not None and bundle.path is not None:
            self.domain = DomainReference.load(bundle.path, bundle.domain, str(bundle.path / "model.json"))
        log.info(
            "classifier %s (%s) on %s (%s), precision %s, %d BatchNorm layers folded",
            self.name,
            bundle.architecture,
            self.device,
            backend,
            getattr(self._runtime, "precision", None)
            or ("fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")),
            self.folded_batchnorms,
        )

    def model_input(self, patches: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """uint8 N x H x W x 3 patches as the network takes them: preprocessed and resized to its input size.

        NumPy and OpenCV only, so a worker thread may run it ahead of the model (fields' patches
        are prepared on the read-ahead worker, :class:`~wsi_screen.patches.Precut`).
        """
        if self.bundle.preprocess == "shah":  # as in training: on the full patch, before resizing
            patches = np.stack([shah_preprocess(np.ascontiguousarray(p)) for p in patches])
        return resize_patches(patches, self.bundle.input_size, self.bundle.interpolation)

    def to_tensor(self, patches: NDArray[np.uint8], *, prepared: bool = False) -> torch.Tensor:
        """Convert uint8 N x H x W x 3 patches to a normalised NCHW float tensor on the device.

        ``prepared``: the patches are :meth:`model_input` already.
        """
        import torch

        arr = patches if prepared else self.model_input(patches)
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        x = x.permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last)

    @property
    def temperature(self) -> float:
        """The bundle's calibration temperature (1.0 when it has none)."""
        cal = self.bundle.calibration
        return 1.0 if cal is None else float(cal.temperature)

    def classify_arrays(self, patches: NDArray[np.uint8], *, prepared: bool = False) -> NDArray[np.float32]:
        """Return probabilities (N x C, float32) for uint8 RGB patches.

        ``softmax(logits / T)`` with the bundle's calibration temperature T (1 without one).
        ``prepared``: the patches are :meth:`model_input` already.
        """
        import torch

        n = patches.shape[0]
        if n == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        if patches.ndim != 4 or patches.shape[3] != 3:
            msg = f"patches must be N x H x W x 3 uint8, got shape {patches.shape}"
            raise ValueError(msg)
        out: list[NDArray[np.float32]] = []
        temperature = self.temperature
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                x = self.to_tensor(patches[start : start + self.batch_size], prepared=prepared)
                if self._runtime is not None:
                    logits = torch.from_numpy(self._runtime(x.contiguous().numpy())[0])
                elif self.dtype is not None:
                    with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                        logits = self.model(x)
                else:
                    logits = self.model(x)
                out.append(
                    torch.softmax(logits.float() / temperature, dim=1).cpu().numpy().astype(np.float32)
                )
        return np.concatenate(out, axis=0)

    def classify(self, batch: PatchBatch) -> CellCalls:
        """Classify a batch of cell patches.

        With a domain reference in the bundle, the same forward pass also gives each cell's
        penultimate features; their distance to the training data and the patch's colour
        statistics travel with the calls (``domain_stats``) for the out-of-domain gate.
        """
        ready = batch.model_input is not None
        net_input = batch.model_input if batch.model_input is not None else batch.pixels
        if self.domain is None:
            probs = self.classify_arrays(net_input, prepared=ready)
            return CellCalls(batch.cells, probs, self.class_names, self.name)
        probs, features = self._probs_and_features(net_input, prepared=ready)
        dist = self.domain.feature_distances(features) if len(features) else np.zeros(0)
        colour = colour_stats(batch.pixels) if len(batch.pixels) else np.zeros((0, len(COLOUR_STATS)))
        stats = np.concatenate([colour, np.asarray(dist, dtype=np.float32)[:, None]], axis=1).astype(
            np.float32
        )
        return CellCalls(batch.cells, probs, self.class_names, self.name, stats, self.domain)

    def _probs_and_features(
        self, patches: NDArray[np.uint8], *, prepared: bool = False
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Calibrated probabilities and penultimate features (pre-logits) in one backbone pass."""
        import torch

        probs: list[NDArray[np.float32]] = []
        feats: list[NDArray[np.float32]] = []
        temperature = self.temperature
        with torch.inference_mode():
            for start in range(0, patches.shape[0], self.batch_size):
                x = self.to_tensor(patches[start : start + self.batch_size], prepared=prepared)
                if self._runtime is not None:
                    logits_np, pre_np = self._runtime(x.contiguous().numpy())
                    logits, pre = torch.from_numpy(logits_np), torch.from_numpy(pre_np)
                else:
                    with torch.autocast(
                        device_type=self.device.type,
                        dtype=self.dtype or torch.float32,
                        enabled=self.dtype is not None,
                    ):
                        f = self.model.forward_features(x)
                        pre = self.model.forward_head(f, pre_logits=True)
                        logits = self.model.forward_head(f)
                feats.append(pre.float().flatten(1).cpu().numpy().astype(np.float32))
                probs.append(
                    torch.softmax(logits.float() / temperature, dim=1).cpu().numpy().astype(np.float32)
                )
        n_cls = len(self.class_names)
        if not probs:
            return np.zeros((0, n_cls), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(probs), np.concatenate(feats)
