from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "screen.toml"


def test_example_config_documents_the_defaults() -> None:
    assert ScreenConfig.from_file(EXAMPLE) == ScreenConfig()
    data = tomllib.loads(EXAMPLE.read_text())
    defaults = ScreenConfig().to_dict()
    for section, values in defaults.items():
        assert set(values) <= set(data[section]), f"examples/screen.toml lacks keys of [{section}]"


def test_overrides_and_dotted_errors(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[aggregate]\nblast_classes = ["BLA", "FGC"]\nmin_cells = 200\n[aggregate.hairy_cell]\nmin_count = 3\n'
    )
    cfg = ScreenConfig.from_file(p)
    assert cfg.aggregate.blast_classes == ("BLA", "FGC")
    assert cfg.aggregate.hairy_cell.min_count == 3
    assert cfg.tiling == ScreenConfig().tiling
    p.write_text("[aggregate]\nmin_cell = 3\n")
    with pytest.raises(ConfigError, match=r"aggregate\.min_cell"):
        ScreenConfig.from_file(p)
    p.write_text("[tiling]\noverlap_um = -1\n")
    with pytest.raises(ConfigError, match=r"tiling\.overlap_um"):
        ScreenConfig.from_file(p)
    p.write_text("[aggregate]\nblast_classes = 'BLA'\n")
    with pytest.raises(ConfigError, match="must be a list"):
        ScreenConfig.from_file(p)
    p.write_text("not toml [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ScreenConfig.from_file(p)


def test_round_trip_through_report_dict() -> None:
    cfg = ScreenConfig().replace("aggregate", min_cells=321)
    assert ScreenConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[aggregate]\nmin_cells = 500.5\n", r"aggregate\.min_cells must be a whole number"),
        ("[aggregate]\nmin_cells = true\n", r"aggregate\.min_cells must be a whole number"),
        ("[aggregate]\nlow_confidence = nan\n", r"aggregate\.low_confidence must be a finite number"),
        ("[aggregate]\nlow_confidence = 1.5\n", r"aggregate\.low_confidence must be in \[0, 1\]"),
        ("[aggregate]\nblast_classes = ['BLA', 3]\n", r"aggregate\.blast_classes\[1\] must be a string"),
        ("[aggregate]\nblast_cutoffs_percent = [5, 120]\n", r"blast_cutoffs_percent must be a percentage"),
        ("[aggregate]\nmax_artefact_percent = -1\n", r"max_artefact_percent must be a percentage"),
        ("[aggregate.hairy_cell]\nmin_percent = 200\n", r"hairy_cell\.min_percent must be a percentage"),
        ("[aggregate.hairy_cell]\nmin_confidence = 2\n", r"hairy_cell\.min_confidence must be in \[0, 1\]"),
        ("[aggregate.hairy_cell]\nmin_count = -3\n", r"hairy_cell\.min_count must be >= 0"),
        ("[aggregate]\nexcluded_classes = ['ART', 'HAC']\n", r"hairy_class 'HAC' is in excluded_classes"),
        ("[classify]\nthreads = -2\n", r"classify\.threads must be 0-1024"),
        ("[classify]\nreduced_precision = 1\n", r"classify\.reduced_precision must be true or false"),
        ("[detector]\noptions = 3\n", r"detector\.options must be a table"),
        ("[tiling]\noverlap_um = inf\n", r"tiling\.overlap_um must be a finite number"),
    ],
)
def test_bad_values_are_named_errors(tmp_path: Path, toml: str, match: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=match) as info:
        ScreenConfig.from_file(p)
    assert str(p) in str(info.value)


def test_integers_are_accepted_where_numbers_are_expected(tmp_path: Path) -> None:
    p = tmp_path / "ok.toml"
    p.write_text("[aggregate]\nlow_confidence = 1\nblast_cutoffs_percent = [5, 10.5]\n")
    cfg = ScreenConfig.from_file(p)
    assert cfg.aggregate.low_confidence == 1.0 and isinstance(cfg.aggregate.low_confidence, float)
    assert cfg.aggregate.blast_cutoffs_percent == (5.0, 10.5)


def test_detector_weights_imply_the_yolo_detector() -> None:
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.runner import resolve_config

    assert resolve_config(detector_weights="yolo-wbc").detector.name == "yolo"
    assert resolve_config().detector.name == "foreground"
    with pytest.raises(WsiScreenError, match="applies to --detector yolo only, not foreground"):
        resolve_config(detector="foreground", detector_weights="yolo-wbc")
