"""The OpenVINO back-end: torch's probabilities and features, a cached IR, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import field_crops

from wsi_screen.classifiers import openvino_backend
from wsi_screen.classifiers import resolve_model
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier
from wsi_screen.config import ScreenConfig
from wsi_screen.device import cpu_has_bf16
from wsi_screen.errors import ConfigError
from wsi_screen.errors import MissingDependencyError
from wsi_screen.types import Cell
from wsi_screen.types import PatchBatch

pytest.importorskip("openvino", reason="openvino is not installed (pip install -e '.[openvino]')")


def test_default_model_on_openvino_matches_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSI_SCREEN_CACHE", str(tmp_path))
    bundle = resolve_model("default")
    torch32 = TimmClassifier(bundle, device="cpu", batch_size=8, reduced_precision=False)
    ov32 = TimmClassifier(bundle, device="cpu", batch_size=8, backend="openvino", reduced_precision=False)
    assert ov32._runtime is not None and ov32._runtime.precision == "f32"
    patches = field_crops(12, bundle.patch_size_px)
    p_torch, p_ov = torch32.classify_arrays(patches), ov32.classify_arrays(patches)
    assert p_ov.shape == p_torch.shape == (12, len(bundle.class_names))
    assert np.abs(p_ov - p_torch).max() < 1e-3
    cells = tuple(Cell(i, "f", float(i), 0.0, (0, 0, 1, 1), 1.0, "test") for i in range(len(patches)))
    a, b = torch32.classify(PatchBatch(patches, cells)), ov32.classify(PatchBatch(patches, cells))
    assert np.abs(a.probs - b.probs).max() < 1e-3
    if a.domain_stats is not None:  # the out-of-domain gate sees the same feature distances
        assert b.domain_stats is not None
        np.testing.assert_allclose(a.domain_stats, b.domain_stats, rtol=1e-3, atol=1e-3)
    assert sorted(p.suffix for p in (tmp_path / "openvino").iterdir()) == [".bin", ".xml"]
    reduced = TimmClassifier(bundle, device="cpu", batch_size=8, backend="openvino")
    assert reduced._runtime.precision == ("bf16" if cpu_has_bf16() else "f32")
    p_reduced = reduced.classify_arrays(patches)
    assert (
        np.mean(p_reduced.argmax(1) == p_torch.argmax(1)) >= 0.9 and np.abs(p_reduced - p_torch).max() < 0.2
    )


def test_the_ir_is_cached_by_the_bundles_hash(
    tmp_path: Path, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSI_SCREEN_CACHE", str(tmp_path))
    bundle = ModelBundle.load(tiny_bundle)
    first = TimmClassifier(bundle, device="cpu", backend="openvino", reduced_precision=False)
    assert first._runtime.path.parent == tmp_path / "openvino"

    def no_convert(*a: object, **k: object) -> Path:
        msg = "converted twice"
        raise AssertionError(msg)

    monkeypatch.setattr(openvino_backend, "_convert", no_convert)
    again = TimmClassifier(bundle, device="cpu", backend="openvino", reduced_precision=False)
    patches = field_crops(4, bundle.patch_size_px)
    np.testing.assert_allclose(first.classify_arrays(patches), again.classify_arrays(patches))
    assert not [p for p in (tmp_path / "openvino").iterdir() if p.name.endswith(".tmp")]  # moved into place


def test_settings_and_a_missing_package_give_clear_errors(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    assert ScreenConfig.from_dict({"classify": {"backend": "openvino"}}).classify.backend == "openvino"
    with pytest.raises(ConfigError, match="runs on the CPU"):
        TimmClassifier(ModelBundle.load(tiny_bundle), device="cuda", backend="openvino")
    real_import = builtins.__import__

    def without_openvino(name: str, *a: object, **k: object) -> object:
        if name == "openvino":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", without_openvino)
    with pytest.raises(MissingDependencyError, match=r"pip install -e '\.\[openvino\]'"):
        TimmClassifier(ModelBundle.load(tiny_bundle), device="cpu", backend="openvino")


_SIGNAL_AFTER_TWO_MODELS = """
import gc, signal, sys, time
import numpy as np
from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.classifiers.timm_classifier import TimmClassifier

bundle = ModelBundle.load(sys.argv[1])
first = TimmClassifier(bundle, device="cpu", backend="openvino")
second = TimmClassifier(bundle, device="cpu", backend="openvino")
first.classify_arrays(np.zeros((2, 64, 64, 3), np.uint8))
del first  # destroyed before the one made after it
gc.collect()
del second
gc.collect()

def expire(signum, frame):
    raise TimeoutError

signal.signal(signal.SIGALRM, expire)
signal.setitimer(signal.ITIMER_REAL, 0.05)
try:
    time.sleep(5)
except TimeoutError:
    print("alarm handled")
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="sigaltstack guard is Linux's")
def test_a_signal_after_models_were_destroyed_out_of_order_is_handled(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    """OpenVINO's alternate signal stacks never leave the thread on freed memory (the time limit's SIGALRM)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WSI_SCREEN_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER_TWO_MODELS, str(tiny_bundle)],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "alarm handled" in run.stdout
