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
    with pytest.raises(ConfigError, match="invalid TOML"):
        ScreenConfig.from_file(p)


def test_round_trip_through_report_dict() -> None:
    cfg = ScreenConfig().replace("aggregate", min_cells=321)
    assert ScreenConfig.from_dict(cfg.to_dict()) == cfg
