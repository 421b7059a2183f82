from __future__ import annotations

import pytest
import torch

from wsi_screen.device import autocast_dtype
from wsi_screen.device import cpu_has_bf16
from wsi_screen.device import select_device
from wsi_screen.errors import ConfigError


def test_cpu_and_auto() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda:0")


def test_bf16_only_where_the_cpu_has_it() -> None:
    dtype = autocast_dtype(torch.device("cpu"))
    assert (dtype is torch.bfloat16) == cpu_has_bf16()
    assert autocast_dtype(torch.device("cpu"), allow_reduced=False) is None


def test_batch_size_zero_is_chosen_for_the_device() -> None:
    from wsi_screen.device import CPU_BATCH_SIZE
    from wsi_screen.device import CUDA_BATCH_SIZE
    from wsi_screen.device import default_batch_size

    assert default_batch_size(torch.device("cpu")) == CPU_BATCH_SIZE == 16
    assert default_batch_size(torch.device("cuda", 0)) == CUDA_BATCH_SIZE


_FAULTS = """
import resource, sys
import numpy as np
np._core.multiarray._set_madvise_hugepage(False)  # count 4 kB pages, whatever the kernel's THP setting
if sys.argv[1] == "keep":
    from wsi_screen.device import keep_freed_memory
    assert keep_freed_memory()
a = np.ones(20 * 2**20, np.uint8)  # 20 MB: served by mmap under glibc's defaults
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(20 * 2**20, np.uint8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    __import__("platform").libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc only"
)
def test_freed_memory_is_reused_without_page_faults() -> None:
    """A freed 20 MB buffer comes back without faulting its 5,120 pages in again (fresh processes)."""
    import subprocess
    import sys

    def faults(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout.split()[-1])

    assert faults("default") > 4000  # every page of the new buffer is faulted in
    assert faults("keep") < 500
