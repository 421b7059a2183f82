from __future__ import annotations

from pathlib import Path

import pytest

from wsi_screen.errors import ConfigError
from wsi_screen.training.schemes import identity_scheme
from wsi_screen.training.schemes import load_scheme
from wsi_screen.training.schemes import load_tolerance
from wsi_screen.training.schemes import shipped_scheme_names


def test_shipped_schemes_load() -> None:
    names = shipped_scheme_names()
    assert {"matek21", "lineage5", "hairy7", "hematonet18", "pbc_matek"} <= set(names)
    assert len(load_scheme("matek21").class_names) == 21
    assert len(load_scheme("hematonet18").class_names) == 18


def test_lineage5_maps_every_matek_code_once() -> None:
    m21 = load_scheme("matek21").class_names
    lin = load_scheme("lineage5")
    assert lin.class_names == ("ERY", "GRA", "LYM", "MOP", "OTH")
    assert {c: lin.map(c) for c in ("PEB", "FGC", "HAC", "MON", "KSC")} == {
        "PEB": "ERY",
        "FGC": "GRA",
        "HAC": "LYM",
        "MON": "MOP",
        "KSC": "OTH",
    }
    assert all(lin.map(c) is not None for c in m21)


def test_hairy7_drops_the_rest() -> None:
    s = load_scheme("hairy7")
    assert s.class_names == ("HAC", "BAS", "MON", "LYT", "EOS", "NGS", "NGB")
    assert s.map("BLA") is None
    assert s.is_dropped("BLA")
    assert not s.is_dropped("XYZ")  # unknown label: unmapped, not dropped


def test_pbc_prefix_scheme() -> None:
    s = load_scheme("pbc_matek")
    assert s.label_from == "prefix"
    assert (s.map("PMY"), s.map("MMY"), s.map("my"), s.map("SNE")) == ("PMO", "MMZ", "MYB", "NGS")
    assert s.is_dropped("PLATELET")


def test_custom_file_and_restriction(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "x"\ndrop = ["ART"]\n[classes]\nMYE = ["BLA", "PMO"]\nLYM = "LYT"\n')
    s = load_scheme(f)
    assert s.class_names == ("MYE", "LYM")
    r = s.restricted_to({"BLA"})
    assert r.class_names == ("MYE",)
    assert identity_scheme(["B", "A", "B"]).class_names == ("A", "B")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name = 'x'\n", "[classes]"),
        ("[classes]\nA = ['X']\nB = ['X']\n", "maps to both"),
        ("drop = ['X']\n[classes]\nA = ['X']\n", "both mapped and dropped"),
        ("label_from = 'nowhere'\n[classes]\nA = ['X']\n", "label_from"),
        ("[classes\n", "not valid TOML"),
    ],
)
def test_invalid_schemes_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:  # noqa: PT011 - message checked below
        load_scheme(f)
    assert needle in str(e.value)


def test_missing_scheme_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_scheme("no_such_scheme")


def test_tolerance_default_and_file(tmp_path: Path) -> None:
    pairs = load_tolerance()
    assert len(pairs) == 9
    assert ("LYI", "BLA") in pairs
    f = tmp_path / "t.toml"
    f.write_text('pairs = [["A", "B"]]\n')
    assert load_tolerance(f) == [("A", "B")]
    f.write_text('pairs = [["A"]]\n')
    with pytest.raises(ConfigError, match="pairs"):
        load_tolerance(f)
