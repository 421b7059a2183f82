"""wsi-screen's classifier against a peer on the same patches and the same model, side by side.

The peer is the plain per-patch PyTorch loop of the kind a script or notebook runs (resize,
normalise, one forward pass per patch in fp32, softmax): TIAToolbox's patch predictor, the peer
the issue names first, cannot be installed here (it pulls its own torch and dozens of packages
from the network; this machine reaches the package registry only for pinned wheels). Both run the
default model's network on the same decoded held-out Matek patches (decoding excluded from both),
warm, one after the other on an otherwise idle machine. Prints patches/s of each, and how far
their probabilities are apart (fp32 against fp32: the same arithmetic; bf16: top-1 agreement).

    .venv/bin/python benchmarks/peer_patch_loop.py --matek ../shared/data/matek_bm --n 512
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def load_patches(matek: Path, n: int) -> np.ndarray:
    import cv2

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.training.overlap import heldout_files

    names = sorted(heldout_files(resolve_model("default"))[0] or ())[:n]  # never trained on
    return np.stack([cv2.imread(str(matek / name))[:, :, ::-1] for name in names])


def peer_loop(
    model: object, patches: np.ndarray, size: int, mean: np.ndarray, std: np.ndarray, interp: int
) -> np.ndarray:
    """One patch at a time, fp32: the loop wsi-screen is compared with."""
    import cv2
    import torch

    out = []
    with torch.inference_mode():
        for p in patches:
            x = cv2.resize(p, (size, size), interpolation=interp).astype(np.float32) / 255.0
            x = (x - mean) / std
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
            out.append(torch.softmax(model(t), dim=1)[0].numpy())  # type: ignore[operator]
    return np.stack(out)


def timed(fn, reps: int = 2) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    fn()  # warm
    t = time.perf_counter()
    for _ in range(reps):
        res = fn()
    return (time.perf_counter() - t) / reps, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True)
    ap.add_argument("--n", type=int, default=512, help="held-out patches")
    ap.add_argument("--model", default="default")
    a = ap.parse_args()
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.preprocess import INTERPOLATIONS
    from wsi_screen.classifiers.timm_classifier import TimmClassifier

    patches = load_patches(a.matek, a.n)
    bundle = resolve_model(a.model)
    fast = TimmClassifier(bundle, device="cpu")  # the default batch size for the CPU
    fp32 = TimmClassifier(bundle, device="cpu", reduced_precision=False)
    peer_model = bundle.create_model().eval()
    mean, std = np.asarray(bundle.mean, np.float32), np.asarray(bundle.std, np.float32)
    s_fast, p_fast = timed(lambda: fast.classify_arrays(patches))
    s_fp32, p_fp32 = timed(lambda: fp32.classify_arrays(patches))
    try:
        onnx = TimmClassifier(bundle, device="cpu", backend="onnx")
        s_onnx, p_onnx = timed(lambda: onnx.classify_arrays(patches))
    except ImportError:  # MissingDependencyError: the [onnx] extra is not installed
        s_onnx, p_onnx = float("nan"), None
    try:
        ov32 = TimmClassifier(bundle, device="cpu", backend="openvino", reduced_precision=False)
        ov = TimmClassifier(bundle, device="cpu", backend="openvino")
        s_ov32, p_ov32 = timed(lambda: ov32.classify_arrays(patches))
        s_ov, p_ov = timed(lambda: ov.classify_arrays(patches))
        ov_precision = ov._runtime.precision
    except ImportError:  # the [openvino] extra is not installed
        s_ov32 = s_ov = float("nan")
        p_ov32 = p_ov = None
        ov_precision = "-"
    s_peer, p_peer = timed(
        lambda: peer_loop(
            peer_model, patches, bundle.input_size, mean, std, INTERPOLATIONS.get(bundle.interpolation, 1)
        )
    )
    n = len(patches)
    # the peer applies no calibration temperature: compare with T = 1 probabilities of the same logits
    t = fp32.temperature
    logits_fp32 = np.log(np.clip(p_fp32, 1e-30, None)) * t
    p_fp32_t1 = np.exp(logits_fp32 - logits_fp32.max(1, keepdims=True))
    p_fp32_t1 /= p_fp32_t1.sum(1, keepdims=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {a.model} ({bundle.architecture}, {bundle.input_size} px)"
    )
    print(f"{n} held-out Matek patches ({patches.shape[1]} px), decoded once, same network")
    print("| runner | precision | batch | patches/s |")
    print("|---|---|---|---|")
    print(f"| peer: per-patch PyTorch loop | fp32 | 1 | {n / s_peer:.0f} |")
    print(f"| wsi-screen TimmClassifier | fp32, channels_last | {fp32.batch_size} | {n / s_fp32:.0f} |")
    print(
        f"| wsi-screen TimmClassifier (default) | {fast.dtype or 'fp32'}, channels_last | {fast.batch_size} | {n / s_fast:.0f} |"
    )
    print(
        f"| wsi-screen TimmClassifier, backend onnx (ONNX Runtime) | fp32 | {fast.batch_size} | {n / s_onnx:.0f} |"
    )
    print(
        f"| wsi-screen TimmClassifier, backend openvino (OpenVINO) | f32 | {fast.batch_size} | {n / s_ov32:.0f} |"
    )
    print(
        f"| wsi-screen TimmClassifier, backend openvino (OpenVINO) | {ov_precision} | {fast.batch_size} | {n / s_ov:.0f} |"
    )
    if p_ov32 is not None and p_ov is not None:
        print(f"max |p(openvino f32) - p(torch fp32)|: {np.abs(p_ov32 - p_fp32).max():.2e}")
        print(
            f"top-1 agreement openvino {ov_precision} vs peer: {np.mean(p_ov.argmax(1) == p_peer.argmax(1)):.4f}"
        )
    if p_onnx is not None:
        print(f"max |p(onnx) - p(torch fp32)|: {np.abs(p_onnx - p_fp32).max():.2e}")
    print(f"max |p(fp32 wsi-screen, T=1) - p(peer)|: {np.abs(p_fp32_t1 - p_peer).max():.2e}")
    print(f"top-1 agreement default (bf16) vs peer: {np.mean(p_fast.argmax(1) == p_peer.argmax(1)):.4f}")
    print(f"speed-up of the default over the peer: {s_peer / s_fast:.1f}x")


if __name__ == "__main__":
    main()
