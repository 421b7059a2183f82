"""Where a field's screening time goes: cProfile of the pipeline on composed held-out fields.

Usage:
    python benchmarks/profile_fields.py --matek ../shared/data/matek_bm [--n 4] [--top 30]

Composes --n fields as benchmarks/field_ratio.py does, screens one to warm up, then profiles the
screening of all of them with the worker pipeline off (so each stage's time is its own) and prints
the --top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matek", type=Path, required=True)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from field_ratio import _compose

    from wsi_screen.config import ScreenConfig
    from wsi_screen.runner import build_screener
    from wsi_screen.runner import screen_to_folder

    cfg = ScreenConfig()
    cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, workers=0, write_behind=0))
    screener, info = build_screener(model="default", device="cpu", config=cfg, backend="torch")
    with tempfile.TemporaryDirectory() as tmp:
        fields = _compose(args.matek, Path(tmp), args.n)
        list(screen_to_folder(screener, info, fields[:1], Path(tmp) / "warm"))
        prof = cProfile.Profile()
        prof.enable()
        list(screen_to_folder(screener, info, fields, Path(tmp) / "out"))
        prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
