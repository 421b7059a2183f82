"""`wsi-screen evaluate` warns when the evaluated patches trained the model (real default model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _helpers import require_shared_data
from click.testing import CliRunner

from wsi_screen.cli import main

HELDOUT = Path(__file__).resolve().parents[2] / "wsi_screen" / "models" / "default" / "heldout_test.txt"


def _pick(root: Path) -> tuple[list[str], list[str]]:
    held = [ln.strip() for ln in HELDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    held_blasts = [p for p in held if p.startswith("BLA/")][:2]
    trained = [p.relative_to(root).as_posix() for p in sorted((root / "BLA").iterdir())]
    return held_blasts, [p for p in trained if p not in set(held)][:3]


def test_evaluate_warns_on_training_patches_and_not_on_held_out_ones(tmp_path):
    root = require_shared_data("matek_bm")
    held, trained = _pick(root)
    data = tmp_path / "matek_bm"  # the training set's name: a copy of some of its patches
    for rel in held + trained:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, data / rel)
    res = CliRunner().invoke(main, ["evaluate", "default", str(data), "-o", str(tmp_path / "all")])
    assert res.exit_code == 0, res.output
    assert "WARNING: 3 of 5 evaluated patches are in the model's training or validation split" in res.output
    m = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert (m["training_overlap"]["n_overlap"], m["training_overlap"]["n_evaluated"]) == (3, 5)
    only = tmp_path / "only.txt"
    only.write_text("\n".join(held) + "\n")
    res = CliRunner().invoke(
        main, ["evaluate", "default", str(data), "--only", str(only), "-o", str(tmp_path / "held")]
    )
    assert res.exit_code == 0, res.output
    assert "WARNING" not in res.output
    assert json.loads((tmp_path / "held" / "metrics.json").read_text())["training_overlap"] is None
