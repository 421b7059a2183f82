"""A batch of mutated inputs beside clean ones: exit 1, no traceback, a summary row for every input."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from _fuzz_sources import mutate
from _fuzz_sources import seeds

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"
KINDS = ("png", ".jpg", ".bmp", "16bit.png", "plain.tif", "pyramid.tiff")
EDITS = ("truncate", "flip", "insert", "overwrite", "size")


def test_mutated_batch(tmp_path: Path, tiny_bundle: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    seed = seeds(tmp_path / "seeds")
    rng = np.random.default_rng(16)
    for i in range(36):
        kind = KINDS[i % len(KINDS)]
        key = ".png" if kind == "png" else kind
        edits = [
            (
                EDITS[int(rng.integers(len(EDITS)))],
                int(rng.integers(1 << 16)),
                rng.bytes(int(rng.integers(1, 9))),
            )
            for _ in range(int(rng.integers(1, 4)))
        ]
        (src / f"m{i:02d}.{key.rsplit('.', 1)[-1]}").write_bytes(mutate(seed[key], edits))
    cv2.imwrite(str(src / "thin.png"), np.full((1, 4000, 3), 200, np.uint8))
    cv2.imwrite(str(src / "dot.png"), np.full((1, 1, 3), 200, np.uint8))
    (src / "folder.tiff").mkdir()
    (src / "garbage.svs").write_bytes(b"\x00" * 1000)
    for k in range(3):
        shutil.copy(FIELD, src / f"clean_{k}.jpg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from wsi_screen.cli import main; main()", "batch", str(src), "-o", str(out)]
    proc = subprocess.run(
        [*cmd, "--model", str(tiny_bundle), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["input"]: r for r in csv.DictReader(f)}
    listed = {p.name for p in src.iterdir() if p.is_file()}  # a folder named .tiff is walked, not read
    assert listed <= set(rows), sorted(listed - set(rows))
    for name in ("clean_0.jpg", "clean_1.jpg", "clean_2.jpg"):
        assert rows[name]["status"] == "ok"
    for r in rows.values():
        if r["status"] == "failed":
            assert r["error_stage"] and r["error_message"] and "\n" not in r["error_message"]
        elif r["status"] == "skipped":  # not an image (a sidecar) or a folder without fields
            assert r["error_message"] and not r["output"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
