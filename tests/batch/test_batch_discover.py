from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from wsi_screen.batch.discover import batch_stems
from wsi_screen.batch.discover import discover_inputs
from wsi_screen.batch.discover import recorded_stems
from wsi_screen.batch.outdir import batch_lock
from wsi_screen.errors import InputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import clean_temp_files


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_discovery_is_sorted_and_skips_hidden_and_out(tmp_path: Path) -> None:
    for name in ("b.png", "a.tif", "a.png", ".hidden.png", "sub/c.svs", "out/x/report.png"):
        _touch(tmp_path / name)
    items = discover_inputs([tmp_path], exclude=[tmp_path / "out"])
    assert [i.name for i in items] == ["a.png", "a.tif", "b.png", "sub"]  # a sub-folder is a case
    assert [i.stem for i in items] == ["a", "a-2", "b", "sub"]
    assert [i.is_case for i in items] == [False, False, False, True]
    assert [i.name for i in discover_inputs([tmp_path], exclude=[tmp_path / "out"], cases=False)] == [
        "a.png", "a.tif", "b.png"]  # fmt: skip
    assert all(i.path.is_absolute() for i in items)
    deep = discover_inputs([tmp_path], recursive=True, pattern="*.svs", exclude=[tmp_path / "out"])
    assert [(i.name, i.stem) for i in deep] == [("sub/c.svs", "sub__c")]


def test_several_patterns_select_files_matching_any(tmp_path: Path) -> None:
    for name in ("a.svs", "b.ndpi", "c.png", "d.svs.txt", "sub/e.ndpi"):
        _touch(tmp_path / name)
    items = discover_inputs([tmp_path], pattern=["*.svs", "*.ndpi"])
    assert [i.name for i in items] == ["a.svs", "b.ndpi"]
    # a file matching two patterns is one input; recursive applies to every pattern
    deep = discover_inputs([tmp_path], recursive=True, pattern=("*.ndpi", "b.*", "*.svs"))
    assert [i.name for i in deep] == ["a.svs", "b.ndpi", "sub/e.ndpi"]
    assert discover_inputs([tmp_path], pattern="*.svs") == discover_inputs([tmp_path], pattern=["*.svs"])


def test_discovery_is_deterministic_and_deduplicates(tmp_path: Path) -> None:
    for name in ("x.png", "y.png"):
        _touch(tmp_path / name)
    twice = discover_inputs([tmp_path, tmp_path / "x.png"])
    assert [i.name for i in twice] == ["x.png", "y.png"]
    assert twice == discover_inputs([tmp_path, tmp_path / "x.png"])


def test_missing_location_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        discover_inputs([tmp_path / "nope"])


def test_batch_stems_unique_and_safe() -> None:
    assert batch_stems(["a.png", "a.tif", "a-2.png", "d/e f.ome.tiff"]) == ["a", "a-2", "a-2-2", "d__e_f"]


def test_known_inputs_keep_their_recorded_folders() -> None:
    # a.tif was screened into "a"; a.png, added later, sorts first but must not take "a"
    assert batch_stems(["a.png", "a.tif"], {"a.tif": ["a"]}) == ["a-2", "a"]
    # recorded folders of inputs no longer present are never given to new inputs
    assert batch_stems(["b.png"], {"gone/b.png": ["b"]}) == ["b-2"]
    # the same name in two folders: each occurrence takes the next recorded folder
    assert batch_stems(["x.png", "x.png", "x.png"], {"x.png": ["x", "x-2"]}) == ["x", "x-2", "x-3"]
    # a recorded name that is not a plain folder name is ignored
    assert batch_stems(["c.png"], {"c.png": ["../elsewhere"]}) == ["c"]


def test_recorded_stems_read_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    assert recorded_stems(ledger) == {}
    ledger.write_text(
        '{"input": "a.tif", "stem": "a", "status": "ok"}\n'
        '{"input": "a.tif", "stem": "a", "status": "failed"}\n'
        '{"input": "s/x.png", "stem": "s__x"}\n'
        '{"input": "s/x.png", "stem": "s__x-2"}\n'
        '{"input": "torn", "st'
    )
    assert recorded_stems(ledger) == {"a.tif": ["a"], "s/x.png": ["s__x", "s__x-2"]}


def test_clean_temp_files_and_lock(tmp_path: Path) -> None:
    stale = [_touch(tmp_path / ".summary.csv.abc.tmp"), _touch(tmp_path / "f0" / ".report.json.x1.tmp")]
    keep = _touch(tmp_path / "f0" / "report.json")
    # a viewer folder a kill caught while it was being built, or while the old one was replaced
    half_viewer = _touch(tmp_path / "f0" / ".viewer.ab12.tmp" / "dzi_files" / "0" / "0_0.jpeg").parents[2]
    old_viewer = _touch(tmp_path / "f0" / ".viewer.cd34.old" / "viewer.json").parent
    viewer = _touch(tmp_path / "f0" / "viewer" / "viewer.json")
    assert sorted(clean_temp_files(tmp_path)) == sorted([*stale, half_viewer, old_viewer])
    assert keep.exists() and viewer.exists()
    assert not half_viewer.exists() and not old_viewer.exists()
    with (
        batch_lock(tmp_path),
        pytest.raises(WsiScreenError, match="another wsi-screen batch"),
        batch_lock(tmp_path),
    ):
        pass
    with batch_lock(tmp_path):  # released again
        pass


def test_broken_symlink_is_an_input_that_fails_by_name(
    tmp_path: Path, run_batch_cli: Callable[..., Result]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "missing.svs").symlink_to(tmp_path / "nowhere" / "slide.svs")
    assert [i.name for i in discover_inputs([folder])] == ["missing.svs"]
    res = run_batch_cli(str(folder), "-o", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert "missing.svs" in res.output and "[read]" in res.output


def test_symlink_loop_is_an_input_that_fails_by_name(
    tmp_path: Path, run_batch_cli: Callable[..., Result]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.svs").symlink_to(folder / "b.svs")
    (folder / "b.svs").symlink_to(folder / "a.svs")
    assert [i.name for i in discover_inputs([folder])] == ["a.svs", "b.svs"]
    res = run_batch_cli(str(folder), "-o", str(tmp_path / "out"))
    assert res.exit_code == 1 and "a.svs" in res.output and "b.svs" in res.output
