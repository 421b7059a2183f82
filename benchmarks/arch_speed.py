"""Raw forward speed of candidate classifier architectures at candidate input sizes.

Usage:
    python benchmarks/arch_speed.py [--arch tf_efficientnet_lite0 resnet10t] [--size 160 192 224]
        [--batch 64] [--seconds 6] [--threads 2] [--fp32]

Builds each timm architecture with random weights (pretrained=False, 8 classes; speed does not
depend on the weights) and times the bare forward pass on a channels_last batch, with bf16
autocast when the CPU has bf16 units (else fp32): issue 13's "raw speed". Resizing and
normalisation are not timed (classifier_throughput.py times a whole bundle).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["tf_efficientnet_lite0", "resnet18", "resnet10t"])
    ap.add_argument("--size", type=int, nargs="+", default=[128, 160, 192, 224])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="time without autocast")
    args = ap.parse_args()

    import timm
    import torch

    from wsi_screen.device import cpu_has_bf16

    torch.set_num_threads(args.threads)
    bf16 = cpu_has_bf16() and not args.fp32
    print(
        f"cpu {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"torch {torch.__version__}, threads {args.threads}, {'bf16' if bf16 else 'fp32'}, "
        f"batch {args.batch}, load avg {os.getloadavg()[0]:.2f}"
    )
    for arch in args.arch:
        model = timm.create_model(arch, pretrained=False, num_classes=8).eval()
        model = model.to(memory_format=torch.channels_last)
        for size in args.size:
            x = torch.randn(args.batch, 3, size, size).to(memory_format=torch.channels_last)
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with torch.inference_mode(), ctx:
                model(x)  # warm-up (oneDNN kernel selection)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    model(x)
                    n += args.batch
                rate = n / (time.perf_counter() - t0)
            print(f"  {arch:24s} {size:4d} px: {rate:7.1f} patches/s", flush=True)


if __name__ == "__main__":
    main()
