"""Nothing is written through a symbolic link inside OUT, and run honours a batch's lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.batch.outdir import LOCK_NAME
from wsi_screen.batch.outdir import batch_lock
from wsi_screen.cli import main
from wsi_screen.errors import OutputError
from wsi_screen.io import atomic_write_npy
from wsi_screen.io import atomic_write_text
from wsi_screen.ledger import LEDGER_NAME

FIELD = Path(__file__).resolve().parents[2] / "examples" / "data" / "synthetic_field.jpg"


def _run(args: list[str], bundle: Path) -> tuple[int, str]:
    res = CliRunner().invoke(main, [*args, "--model", str(bundle), "--device", "cpu"])
    return res.exit_code, res.output


def test_a_linked_input_folder_in_out_gets_nothing(tmp_path: Path, tiny_bundle: Path) -> None:
    shutil.copy(FIELD, tmp_path / "field_00.jpg")
    shutil.copy(FIELD, tmp_path / "field_01.jpg")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "field_00").symlink_to(elsewhere, target_is_directory=True)
    code, output = _run(
        ["run", str(tmp_path / "field_00.jpg"), str(tmp_path / "field_01.jpg"), "-o", str(out)], tiny_bundle
    )
    assert code == 1, output
    assert list(elsewhere.iterdir()) == []
    assert "symbolic link" in output and "[report]" in output
    assert (out / "field_01" / "report.json").is_file()  # the other input is not lost


@pytest.mark.parametrize("name", ["batch.log", LEDGER_NAME, LOCK_NAME])
def test_batch_files_are_not_opened_through_links(tmp_path: Path, tiny_bundle: Path, name: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(FIELD, src / "a.jpg")
    out, target = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    target.write_text("precious\n")
    (out / name).symlink_to(target)
    code, output = _run(["batch", str(src), "-o", str(out)], tiny_bundle)
    assert code != 0
    assert target.read_text() == "precious\n"
    assert "symbolic link" in output or "symbolic link" in (out / "batch.log").read_text(errors="replace")


def test_atomic_writes_refuse_a_link_at_the_destination(tmp_path: Path) -> None:
    target = tmp_path / "victim.npy"
    target.write_bytes(b"precious")
    (tmp_path / "map.npy").symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_npy(tmp_path / "map.npy", np.zeros(3))
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_text(tmp_path / "map.npy", "x")
    assert target.read_bytes() == b"precious"


def test_run_refuses_an_out_a_batch_is_writing(tmp_path: Path, tiny_bundle: Path) -> None:
    shutil.copy(FIELD, tmp_path / "f.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("the batch's index")
    with batch_lock(out):
        code, output = _run(["run", str(tmp_path / "f.jpg"), "-o", str(out)], tiny_bundle)
    assert code == 2 and "another wsi-screen batch or run" in output
    assert (out / "index.html").read_text() == "the batch's index"
    assert not (out / "f").exists()
    code, output = _run(["run", str(tmp_path / "f.jpg"), "-o", str(out)], tiny_bundle)
    assert code == 0, output
    assert json.loads((out / "f" / "report.json").read_text())["input"]["path"].endswith("f.jpg")
    assert (out / LOCK_NAME).is_file()
