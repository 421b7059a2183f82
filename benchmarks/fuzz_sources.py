"""Fuzz the sources for longer than CI does: mutated images must fail cleanly, quickly, in bounded memory.

Usage:
    .venv/bin/python benchmarks/fuzz_sources.py [--cases 5000] [--seed 0] [--case-timeout 10]

Each case takes one of the small valid seeds (PNG, JPEG, BMP, 16-bit PNG, plain TIFF, tiled
pyramidal TIFF; see ``tests/_fuzz_sources.py``), applies 1-4 random edits (truncation, byte flips,
inserted or overwritten bytes, a rewritten declared image size) and uses the result as a run does.
A case is a bug when anything but a ``WsiScreenError`` escapes, or when it runs longer than
``--case-timeout`` seconds. Prints the outcome counts, the slowest cases, peak RSS and every bug
(with the edits, so it can be replayed).
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _fuzz_sources import exercise  # noqa: E402
from _fuzz_sources import mutate  # noqa: E402
from _fuzz_sources import seeds  # noqa: E402

KINDS = ("truncate", "flip", "insert", "overwrite", "size")


class CaseTimeoutError(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise CaseTimeoutError


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--case-timeout", type=int, default=10)
    args = ap.parse_args()
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # it logs every corrupt tag it skips
    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    counts: collections.Counter[str] = collections.Counter()
    bugs: list[tuple[str, list[Any], str]] = []
    slowest: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory(prefix="wsi_fuzz_") as tmp:
        base = seeds(Path(tmp) / "seeds")
        names = sorted(base)
        t_all = time.perf_counter()
        for i in range(args.cases):
            key = rng.choice(names)
            edits = [
                (rng.choice(KINDS), rng.randrange(1 << 16), rng.randbytes(rng.randint(1, 16)))
                for _ in range(rng.randint(1, 4))
            ]
            path = Path(tmp) / f"case{i}.{key.rsplit('.', 1)[-1]}"
            path.write_bytes(mutate(base[key], edits))
            t = time.perf_counter()
            signal.alarm(args.case_timeout)
            try:
                counts[exercise(path)] += 1
            except CaseTimeoutError:
                counts["BUG"] += 1
                bugs.append((key, edits, f"ran past {args.case_timeout} s"))
            except Exception as e:  # noqa: BLE001 - every other escape is what we are looking for
                counts["BUG"] += 1
                bugs.append((key, edits, f"{type(e).__name__}: {str(e)[:200]}"))
            finally:
                signal.alarm(0)
            slowest.append((time.perf_counter() - t, key))
            path.unlink()
        wall = time.perf_counter() - t_all
    slowest.sort(reverse=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cases {args.cases}  seed {args.seed}  wall {wall:.1f} s  peak RSS {peak_mb:.0f} MB")
    print("outcomes:", dict(counts))
    print("slowest:", ", ".join(f"{k} {s:.2f} s" for s, k in slowest[:5]))
    for key, edits, what in bugs:
        print(f"BUG {key} {edits!r}: {what}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
