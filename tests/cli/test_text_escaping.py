"""File names cannot forge lines or terminal escapes in stderr, stdout or batch.log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

EVIL = "x\nFAILED  forged.png [read] fake\x1b[31m.png"


def test_control_characters_in_names_are_escaped_everywhere(tmp_path: Path, tiny_bundle: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "plain.png"), np.full((200, 200, 3), 230, np.uint8))
    (folder / EVIL).write_bytes(b"not an image")  # fails, and its name is printed
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-c",
        "from wsi_screen.cli import main; main()",
        "batch",
        str(folder),
        "-o",
        str(out),
    ]
    cmd += ["--model", str(tiny_bundle), "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert (out / "batch.log").is_file(), proc.stderr[-3000:]
    for text in (proc.stdout, proc.stderr, (out / "batch.log").read_text(encoding="utf-8")):
        assert "\x1b" not in text
        assert not any(line.startswith("FAILED  forged.png") for line in text.splitlines())
    assert "\\x1b" in proc.stderr and "\\x0a" in proc.stderr  # shown, escaped
