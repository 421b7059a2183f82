from __future__ import annotations

import copy
from pathlib import Path

import pytest
import timm
import torch

from wsi_screen.classifiers.fuse import fold_batchnorm


def _with_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics, so that folding them is visible."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize(("arch", "size"), [("resnet10t", 64), ("tf_efficientnet_lite0", 64)])
def test_fold_removes_batchnorm_and_keeps_the_function(arch: str, size: int) -> None:
    model = _with_stats(timm.create_model(arch, pretrained=False, num_classes=5))
    before = copy.deepcopy(model.state_dict())
    fused, n = fold_batchnorm(model, size)
    assert n > 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
        f_feat = fused.forward_head(fused.forward_features(x), pre_logits=True)
        m_feat = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(f_feat, m_feat, rtol=1e-4, atol=1e-4)
    # the given model is left as it was
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class _OrderLies(torch.nn.Module):
    """The BatchNorm is registered right after conv_b but normalises conv_a's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = torch.nn.Conv2d(3, 4, 1)
        self.conv_b = torch.nn.Conv2d(3, 4, 1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.bn(self.conv_a(x)) + self.conv_b(x)).mean(dim=(2, 3))


def test_fold_keeps_the_original_when_module_order_is_not_data_flow() -> None:
    model = _with_stats(_OrderLies())
    out, n = fold_batchnorm(model, 8)
    assert n == 0 and out is model
    assert isinstance(out.bn, torch.nn.BatchNorm2d)


def test_classifier_runs_the_folded_network(tiny_bundle: Path) -> None:
    import numpy as np

    from wsi_screen.classifiers.bundle import ModelBundle
    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    bundle = ModelBundle.load(tiny_bundle)
    clf = TimmClassifier(bundle, device="cpu", threads=1, reduced_precision=False)
    assert clf.folded_batchnorms > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.model.modules())
    patches = np.random.default_rng(0).integers(0, 255, (6, 250, 250, 3), dtype=np.uint8)
    ref = bundle.create_model()
    with torch.inference_mode():
        want = torch.softmax(ref(clf.to_tensor(patches)) / clf.temperature, dim=1).numpy()
    np.testing.assert_allclose(clf.classify_arrays(patches), want, atol=1e-4)
    as_trained = TimmClassifier(bundle, device="cpu", threads=1, reduced_precision=False, fold_bn=False)
    assert as_trained.folded_batchnorms == 0
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in as_trained.model.modules())
    np.testing.assert_allclose(as_trained.classify_arrays(patches), want, atol=1e-5)
