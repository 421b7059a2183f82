"""Every numeric configuration key has a lower and an upper bound: a huge value is a one-line ConfigError.

``tiling.tile_size_px = 30000`` held 4.2 GB for an 800 x 800 field; ``1e8`` and
``overlap_um = 1e308`` ended in tracebacks. The test walks every numeric key of the default
configuration, so a key added without a range fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsi_screen.cli import main
from wsi_screen.config import ScreenConfig
from wsi_screen.config import TilingConfig
from wsi_screen.config_ranges import RANGES
from wsi_screen.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _numeric_keys(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, default) of every number or list of numbers in a ``to_dict()`` configuration."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and all(_is_number(v) for v in value) or _is_number(value):
            yield f"{prefix}{key}", value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nested(key: str, value: Any) -> dict[str, Any]:
    *sections, name = key.split(".")
    data: dict[str, Any] = {name: value}
    for section in reversed(sections):
        data = {section: data}
    return data


KEYS = dict(_numeric_keys(ScreenConfig().to_dict()))


def test_every_numeric_key_has_a_range() -> None:
    assert len(KEYS) > 40
    assert sorted(set(KEYS) - set(RANGES)) == []
    for key, default in KEYS.items():  # the defaults lie inside their ranges
        lo, hi = RANGES[key]
        for v in default if isinstance(default, list) else [default]:
            assert lo <= v <= hi, key


def _huge(default: Any) -> list[Any]:
    sample = default[0] if isinstance(default, list) else default
    values: list[Any] = [1e308, -1e308] if isinstance(sample, float) else [2**63 - 1, -(2**63), 10**400]
    return [[v] for v in values] if isinstance(default, list) else values


@pytest.mark.parametrize("key", sorted(KEYS))
def test_huge_value_refused_naming_the_key(key: str) -> None:
    for value in _huge(KEYS[key]):
        with pytest.raises(ConfigError) as e:
            ScreenConfig.from_dict(_nested(key, value), where="c.toml")
        message = str(e.value)
        assert key in message and "\n" not in message and message.startswith("c.toml: "), message


def test_defaults_and_example_load() -> None:
    assert ScreenConfig.from_dict(ScreenConfig().to_dict()) == ScreenConfig()
    ScreenConfig.from_file(ROOT / "examples" / "screen.toml")


def test_direct_and_override_paths_are_checked() -> None:
    """Sections built directly (evaluate-detector's tiling) and CLI overrides meet the same ranges."""
    with pytest.raises(ConfigError, match=r"tiling.tile_size_px must be 64-8192, got 30000"):
        TilingConfig(tile_size_px=30000)
    with pytest.raises(ConfigError, match="limits.input_timeout_s"):
        ScreenConfig().replace("limits", input_timeout_s=1e308)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tiling]\ntile_size_px = 30000\n", "tiling.tile_size_px"),
        ("[tiling]\ntile_size_px = 100000000\n", "tiling.tile_size_px"),
        ("[tiling]\noverlap_um = 1e308\n", "tiling.overlap_um"),
        ("[report]\ngallery_max_per_class = 100000000\n", "report.gallery_max_per_class"),
    ],
)
def test_run_refuses_out_of_range_config(text: str, key: str, tiny_bundle: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    field = ROOT / "examples" / "data" / "synthetic_field.jpg"
    args = ["run", str(field), "-o", str(tmp_path / "o"), "--config", str(cfg), "--model", str(tiny_bundle)]
    res = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    assert key in res.output and str(cfg) in res.output
