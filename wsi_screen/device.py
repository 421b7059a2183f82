"""Device selection, reduced-precision choice, thread counts, batch size and the CPU allocator, decided explicitly per run."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
from typing import TYPE_CHECKING

from wsi_screen.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def select_device(spec: str = "auto") -> torch.device:
    """Resolve ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` to a torch device.

    Raises:
        ConfigError: CUDA was asked for but is not available, or the spec is malformed.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            msg = f"--device {spec}: CUDA is not available on this machine; use --device cpu"
            raise ConfigError(msg)
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            msg = f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present"
            raise ConfigError(msg)
        return dev
    msg = f"--device {spec!r}: expected auto, cpu, cuda or cuda:N"
    raise ConfigError(msg)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix units (AMX or AVX512-BF16).

    On CPUs without them bf16 autocast is slower than fp32, so it is only used where present.
    """
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # noqa: PTH123 - linux-only probe
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        return False
    return any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def autocast_dtype(device: torch.device, *, allow_reduced: bool = True) -> torch.dtype | None:
    """Reduced-precision dtype for inference on ``device``, or None for fp32."""
    import torch

    if not allow_reduced:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def default_threads() -> int:
    """Threads for CPU inference: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count deliberately; return the value set."""
    import torch

    n = n or default_threads()
    torch.set_num_threads(n)
    log.debug("torch threads set to %d", n)
    return n


CPU_BATCH_SIZE = 16
"""Patches per forward pass on the CPU: the default model runs about 290-310 patches/s at 16
against 200-220 at 64 on this project's 2-core machine, whose activations no longer fit the
caches nor malloc's heap (:func:`keep_freed_memory`; ``benchmarks/batch_size.py``,
docs/benchmarks.md)."""
CUDA_BATCH_SIZE = 64


def default_batch_size(device: torch.device) -> int:
    """``classify.batch_size`` 0: :data:`CPU_BATCH_SIZE` on the CPU, :data:`CUDA_BATCH_SIZE` on CUDA."""
    return CUDA_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE


MMAP_THRESHOLD_BYTES = 32 * 1024**2
"""Blocks up to this size come from malloc's heap, not a fresh ``mmap`` (glibc's upper limit)."""
TRIM_THRESHOLD_BYTES = 128 * 1024**2
"""Free memory up to this much at the top of the heap is kept for reuse, not handed back."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed activation buffers for the next forward pass; True if set.

    By default glibc serves large blocks with a fresh ``mmap`` and returns them on ``free``, so a
    forward pass on the CPU page-faults its activations in again, and its threshold adapts to
    what the process freed before: a batch-16 pass faulted 849 times per patch (1.6 ms of kernel
    time, 233 patches/s) in a fresh process and not at all (300/s) after batch-64 passes had
    raised the threshold (``benchmarks/batch_size.py``). With :data:`MMAP_THRESHOLD_BYTES` and
    :data:`TRIM_THRESHOLD_BYTES` set, batches whose activations stay under 32 MB
    (:data:`CPU_BATCH_SIZE`) never fault, whatever ran before (289-292/s). A no-op (False)
    where the C library is not glibc. The setting is process-wide; memory kept for reuse is at
    most :data:`TRIM_THRESHOLD_BYTES`.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1)
        ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1) and ok
    except (OSError, AttributeError):
        return False
    log.debug("malloc keeps freed memory: %s", ok)
    return ok
