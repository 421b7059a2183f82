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
