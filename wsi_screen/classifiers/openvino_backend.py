"""The classifier's network run by OpenVINO on the CPU (``classify.backend = "openvino"``).

The bundle's timm model (BatchNorm folded) is converted once with ``openvino.convert_model``
straight from torch (logits and penultimate features in one graph, any batch size; no ONNX step)
and the IR is cached under ``$WSI_SCREEN_CACHE/openvino`` by the bundle's SHA-256. OpenVINO's CPU
plugin then runs it in bf16 where the CPU has bf16 units and ``classify.reduced_precision`` is on,
else in fp32, with the same threads as torch. Preprocessing stays in
:class:`~wsi_screen.classifiers.timm_classifier.TimmClassifier`, so every back-end sees the same
input tensor; in fp32 its probabilities agree with torch's within 1e-3 (tested).

Install with ``pip install -e '.[openvino]'``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import platform
import secrets
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.onnx_backend import cache_dir
from wsi_screen.classifiers.onnx_backend import logits_and_features
from wsi_screen.errors import MissingDependencyError

log = logging.getLogger(__name__)


class OpenVinoForward:
    """``(logits, features)`` of normalised NCHW float32 patches, computed by OpenVINO.

    Args:
        model: the bundle's timm model (eval mode, CPU).
        input_size: the model's input side in pixels.
        key: the bundle's SHA-256 (names the cached IR).
        threads: OpenVINO's inference threads.
        bf16: run in bf16 (only where the CPU has bf16 units: the caller decides).

    Raises:
        MissingDependencyError: openvino is not installed (the message says what to install).
    """

    def __init__(self, model: Any, input_size: int, key: str, threads: int, *, bf16: bool) -> None:
        with _own_signal_stack():  # from the import on
            try:
                import openvino as ov
            except ImportError as e:
                msg = "classify.backend 'openvino' needs openvino: pip install -e '.[openvino]'"
                raise MissingDependencyError(msg) from e
            path = cache_dir("openvino") / f"{key[:32]}-{input_size}.xml"
            if not (path.is_file() and path.with_suffix(".bin").is_file()):
                path = _convert(model, input_size, path)
            self.precision = "bf16" if bf16 else "f32"
            config = {"INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": max(1, threads),
                      "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
            self.compiled = ov.Core().compile_model(str(path), "CPU", config)
            self.request = self.compiled.create_infer_request()
        self.path = path
        log.info("classifier network on OpenVINO %s (%s, %s)", ov.__version__, self.precision, path)

    def __call__(self, x: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Logits (N x C) and flattened penultimate features (N x F) of ``x`` (N x 3 x S x S)."""
        with _own_signal_stack():
            out = self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        logits, features = (np.array(out[self.compiled.output(i)], np.float32) for i in (0, 1))
        return logits, features


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def _own_signal_stack() -> Iterator[None]:
    """Give this thread its own alternate signal stack back after OpenVINO code has run.

    OpenVINO installs an alternate signal stack (``sigaltstack``) on the calling thread and puts
    the one it found back when its objects are destroyed; two models destroyed in another order
    than they were made leave the thread on freed memory, and the next signal handled on it
    crashed the process (seen in the test suite with the ``SIGALRM`` an earlier per-input time
    limit used; :mod:`wsi_screen.deadline` sends no signal, but Ctrl-C's ``SIGINT`` or a
    ``SIGTERM`` would do the same). Restoring the thread's own stack at once keeps every later
    restore harmless. Linux (glibc) only; elsewhere nothing is done.
    """
    libc = _libc()
    if libc is None:
        yield
        return
    own = _StackT()
    libc.sigaltstack(None, ctypes.byref(own))
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(own), None)


@functools.cache
def _libc() -> Any:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _convert(model: Any, input_size: int, path: Path) -> Path:
    """Convert ``model`` to an IR at ``path`` (xml + bin), written into a temporary folder and moved."""
    import openvino as ov
    import torch

    net = logits_and_features(model.float().eval()).to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracing warnings of timm's dynamic 'same' padding
        graph = ov.convert_model(
            net,
            example_input=torch.zeros(2, 3, input_size, input_size),
            input=[(-1, 3, input_size, input_size)],
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()
    except OSError:  # a read-only cache: keep the IR for this process only
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="wsi-screen-openvino-")) / path.name
        tmp = path.parent / f".{path.stem}.tmp"
        tmp.mkdir()
    try:
        ov.save_model(graph, str(tmp / path.name), compress_to_fp16=False)
        (tmp / path.name).with_suffix(".bin").replace(path.with_suffix(".bin"))
        (tmp / path.name).replace(path)  # the xml last: its presence means the pair is complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted the classifier to %s", path)
    return path
