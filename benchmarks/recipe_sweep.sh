#!/bin/bash
# Issue 13 ingredient sweep: seven recipes trained side by side on one GPU (docs/training.md).
# Usage: OUT=folder bash benchmarks/recipe_sweep.sh [DATA]; bundles go to /tmp/runs/<recipe>, the
# weights (fp16, for the transfer back) and a tarball of the logs and model.json files to $OUT.
# Ran 2026-12-04 on a lent H200 with DATA = the training + validation patches re-encoded at JPEG q90.
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 MPLCONFIGDIR=/tmp/mpl TQDM_DISABLE=1
WS="python3 -c 'import sys; from wsi_screen.cli import main; sys.exit(main())'"
D=${1:-../shared/data/matek_bm}
COMMON="--arch tf_efficientnet_lite0 --init imagenet:tf_efficientnet_lite0 --test-fraction 0.2 --seed 0 --lr 0.001 --ema-decay 0.99 --device cuda"
COL="--hue 0.05 --saturation 0.3 --gamma 0.3 --white-balance 0.15 --stain-sigma 0.1"
OPT="--blur 1.5 --zoom 0.2 --jpeg 40"
declare -A C
C[c1_base]="$COMMON --image-size 160 --epochs 40"
C[c2_colour]="$COMMON --image-size 160 --epochs 40 $COL"
C[c3_optics]="$COMMON --image-size 160 --epochs 40 $COL $OPT"
C[c4_erase]="$COMMON --image-size 160 --epochs 40 $COL $OPT --erase 0.25"
C[c5_176]="$COMMON --image-size 176 --epochs 40 $COL $OPT --erase 0.25"
C[c6_long]="$COMMON --image-size 160 --epochs 60 $COL $OPT --erase 0.25"
C[c7_scratch]="--arch tf_efficientnet_lite0 --test-fraction 0.2 --seed 0 --lr 0.002 --ema-decay 0.99 --device cuda --image-size 160 --epochs 40 $COL $OPT --erase 0.25"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch,timm;print('torch',torch.__version__,'timm',timm.__version__)"
mkdir -p /tmp/runs
for k in "${!C[@]}"; do
  eval "$WS train $D -o /tmp/runs/$k --name $k ${C[$k]}" > /tmp/runs/$k.log 2>&1 &
done
DEADLINE=$(( $(date +%s) + ${SWEEP_SECONDS:-430} ))
while [ "$(jobs -rp | wc -l)" -gt 0 ] && [ "$(date +%s)" -lt "$DEADLINE" ]; do sleep 5; done
jobs -rp | xargs -r kill
sleep 2
cd /tmp/runs
python3 - <<'PY'
import os, glob
from safetensors.torch import load_file, save_file
out = os.environ["OUT"]
for d in sorted(glob.glob("c*_*/")):
    k = d.rstrip("/")
    src = d + "model.safetensors" if os.path.exists(d + "model.safetensors") else d + "best.safetensors"
    if os.path.exists(src):
        sd = {n: (t.half() if t.is_floating_point() else t) for n, t in load_file(src).items()}
        save_file(sd, f"{out}/{k}.fp16.safetensors")
        print(k, "weights from", src)
PY
tar czf $OUT/runs.tgz --exclude='*.safetensors' --exclude='*.pt' .
ls -la $OUT
