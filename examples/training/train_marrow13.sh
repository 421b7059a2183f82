#!/usr/bin/env bash
# the training run of the shipped marrow13 classifier (its model card has the command); run from anywhere
cd "$(dirname "$0")/../.."
exec .venv/bin/wsi-screen train examples/training/marrow13.toml -o runs/marrow13 \
  --arch tf_efficientnet_lite0 --init imagenet:tf_efficientnet_lite0 --image-size 176 \
  --epochs 16 --epoch-size 4096 --lr 0.001 --ema-decay 0.99 --test-fraction 0.2 --seed 0 \
  --device cpu --threads 2 \
  --hue 0.05 --saturation 0.3 --gamma 0.3 --white-balance 0.15 --stain-sigma 0.1 --stain-mix 0.5 \
  --blur 1.5 --zoom 0.2 --jpeg 40 --erase 0.25 --name default "$@"
