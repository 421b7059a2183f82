"""ultralytics' config folder is private to the process, not a predictable shared name."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from wsi_screen.detectors import ultralytics_env


def test_config_dir_is_private_and_unpredictable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(ultralytics_env, "_PRIVATE_DIR", [])
    # the old predictable folder, with a planted link where the font copy went
    planted = tmp_path / "wsi_screen_ultralytics_root" / "Ultralytics"
    planted.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (planted / "Arial.ttf").symlink_to(victim)

    root = ultralytics_env._config_dir()
    assert root.parent == tmp_path and root != planted.parent
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert (root / "Ultralytics" / "Arial.ttf").stat().st_size > 10_000  # the font, really copied
    assert not (root / "Ultralytics" / "Arial.ttf").is_symlink()
    assert victim.read_text() == "precious"
    assert ultralytics_env._config_dir() == root  # one folder per process
