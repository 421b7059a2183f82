"""Case discovery (fields, sidecars, order) and pooling of the fields' calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsi_screen.cases import SIDECAR
from wsi_screen.cases import SUBFOLDER
from wsi_screen.cases import case_from_files
from wsi_screen.cases import case_from_folder
from wsi_screen.cases import pool_calls
from wsi_screen.errors import InputError
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls


def _touch(folder: Path, *names: str) -> None:
    for n in names:
        (folder / n).write_bytes(b"x")


def test_a_folder_of_fields_with_sidecars(tmp_path: Path) -> None:
    case = tmp_path / "patient_7"
    case.mkdir()
    _touch(case, "field_10.png", "field_2.jpg", "field_1.tif", "field_00.json", "notes.txt", ".DS_Store")
    (case / "raw").mkdir()
    spec = case_from_folder(case)
    assert spec.name == "patient_7" and spec.folder == case
    assert [p.name for p in spec.fields] == ["field_1.tif", "field_2.jpg", "field_10.png"]
    assert {(s.path.name, s.reason) for s in spec.skipped} == {
        ("field_00.json", SIDECAR),
        ("notes.txt", SIDECAR),
        ("raw", SUBFOLDER),
    }
    assert spec.field_names() == ["field_1", "field_2", "field_10"]
    only_png = case_from_folder(case, patterns=["*.png", "*.jpg"])
    assert [p.name for p in only_png.fields] == ["field_2.jpg", "field_10.png"]


def test_a_folder_without_images_is_an_error_naming_it(tmp_path: Path) -> None:
    _touch(tmp_path, "notes.txt")
    with pytest.raises(InputError, match=rf"{tmp_path}: no field image"):
        case_from_folder(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        case_from_folder(tmp_path / "notes.txt")


def test_files_named_as_one_case(tmp_path: Path) -> None:
    _touch(tmp_path, "a.png", "b.png", "a.json")
    a, b, side = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "a.json"
    (tmp_path / "x").mkdir()
    _touch(tmp_path / "x", "a.png")
    spec = case_from_files([a, b, side, tmp_path / "x" / "a.png"], "P1")
    assert spec.name == "P1" and spec.folder is None and len(spec.fields) == 3
    assert spec.field_names() == ["a", "b", "a-2"]
    assert [s.path for s in spec.skipped] == [side]
    for bad in ("", "..", "a/b"):
        with pytest.raises(InputError, match="a case name is a folder name"):
            case_from_files([a], bad)


def test_pooled_calls_renumber_cells_in_field_order() -> None:
    classes = ("BLA", "LYT")

    def calls(n: int, sid: str, p_bla: float) -> CellCalls:
        cells = tuple(Cell(i, sid, 10.0 * i, 5.0, (0, 0, 1, 1), 1.0, "t") for i in range(n))
        return CellCalls(cells, np.tile(np.float32([p_bla, 1 - p_bla]), (n, 1)), classes, "m")

    pooled, field_of = pool_calls([calls(2, "f1", 0.9), calls(0, "f2", 0.9), calls(3, "f3", 0.1)], classes)
    assert [c.cell_id for c in pooled.cells] == [0, 1, 2, 3, 4]
    assert [c.source_id for c in pooled.cells] == ["f1", "f1", "f3", "f3", "f3"]
    assert field_of == [0, 0, 2, 2, 2]
    assert pooled.labels == ["BLA", "BLA", "LYT", "LYT", "LYT"]
    empty, none = pool_calls([], classes)
    assert empty.probs.shape == (0, 2) and none == []
