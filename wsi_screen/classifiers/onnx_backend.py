"""The classifier's network run by ONNX Runtime on the CPU (``classify.backend = "onnx"``).

The bundle's timm model is exported once to ONNX (logits and penultimate features in one graph,
any batch size) and cached under ``$WSI_SCREEN_CACHE`` (default ``~/.cache/wsi-screen``) by the
bundle's SHA-256, so a changed model is exported afresh; nothing is downloaded. ONNX Runtime then
runs it in fp32 with the same threads as torch would. Preprocessing stays in
:class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier`, so both back-ends see the same
input tensor; their probabilities agree within 1e-3 (tested).

Install with ``pip install -e '.[onnx]'`` (``onnxruntime``, ``onnx``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import MissingDependencyError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")
OPSET = 17


def logits_and_features(net: Any) -> Any:
    """``net`` wrapped to return ``(logits, penultimate features)`` from one backbone pass (for export)."""
    import torch

    class _LogitsAndFeatures(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.net = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.net.forward_features(x)
            return self.net.forward_head(f), self.net.forward_head(f, pre_logits=True).flatten(1)

    return _LogitsAndFeatures(net)


def cache_dir(runtime: str = "onnx") -> Path:
    """Where ``runtime``'s exported graphs are kept (``$WSI_SCREEN_CACHE/<runtime>``, default ``~/.cache/wsi-screen/<runtime>``)."""
    root = os.environ.get("WSI_SCREEN_CACHE") or Path.home() / ".cache" / "wsi-screen"
    return Path(root) / runtime


class OnnxForward:
    """``(logits, features)`` of normalised NCHW float32 patches, computed by ONNX Runtime.

    Args:
        model: the bundle's timm model (eval mode, CPU).
        input_size: the model's input side in pixels.
        key: the bundle's SHA-256 (names the cached graph).
        threads: ONNX Runtime's intra-op threads.

    Raises:
        MissingDependencyError: onnxruntime or onnx is not installed (the message says what to install).
    """

    def __init__(self, model: Any, input_size: int, key: str, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            msg = "classify.backend 'onnx' needs onnxruntime: pip install -e '.[onnx]'"
            raise MissingDependencyError(msg) from e
        path = cache_dir() / f"{key[:32]}-{input_size}.onnx"
        if not path.is_file():
            path = _export(model, input_size, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        log.info("classifier network on ONNX Runtime %s (%s)", ort.__version__, path)

    def __call__(self, x: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Logits (N x C) and flattened penultimate features (N x F) of ``x`` (N x 3 x S x S)."""
        logits, features = self.session.run(None, {"pixels": np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(logits, np.float32), np.asarray(features, np.float32)


def _export(model: Any, input_size: int, path: Path) -> Path:
    """Export ``model`` to ``path`` atomically (or to a temporary folder when the cache is read-only)."""
    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as e:
        msg = "classify.backend 'onnx' needs onnx to export the model: pip install -e '.[onnx]'"
        raise MissingDependencyError(msg) from e

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        path = Path(tempfile.mkdtemp(prefix="wsi-screen-onnx-")) / path.name
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    dummy = torch.zeros(2, 3, input_size, input_size)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                logits_and_features(model.float().eval()),
                (dummy,),
                tmp_name,
                dynamo=False,
                input_names=["pixels"],
                output_names=["logits", "features"],
                dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
                opset_version=OPSET,
            )
        Path(tmp_name).replace(path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    log.info("exported the classifier to %s", path)
    return path
