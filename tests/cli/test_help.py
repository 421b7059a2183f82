"""Every command's --help: exit 0, help on every option, no raw RST, one option vocabulary."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from wsi_screen.cli import main

# commands without an output folder
NO_OUTPUT = {("models",), ("review", "apply"), ("review", "sign"), ("review", "verify"), ("calibrate",)}
# calibrate writes into its bundle; review writes into the report folder it is given; verify only reads
# commands that keep the old ``--out`` spelling as a hidden, deprecated alias
OLD_OUT = {("run",), ("batch",)}


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        path = (*prefix, name)
        found.append((path, cmd))
        if isinstance(cmd, click.Group):
            found.extend(_walk(cmd, path))
    return found


COMMANDS = _walk(main)
LEAVES = [(path, cmd) for path, cmd in COMMANDS if not isinstance(cmd, click.Group)]


def _ids(items: list[tuple[tuple[str, ...], click.Command]]) -> list[str]:
    return [" ".join(path) for path, _ in items]


def test_every_command_is_walked() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"run", "batch", "train", "evaluate", "explain", "models", "review", "review apply"} <= names
    assert {"train-detector", "evaluate-detector"} <= names


@pytest.mark.parametrize(("path", "cmd"), [((), main), *COMMANDS], ids=["wsi-screen", *_ids(COMMANDS)])
def test_help_exits_0_without_raw_rst(path: tuple[str, ...], cmd: click.Command) -> None:
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    assert "``" not in res.output, f"raw RST markup in `wsi-screen {' '.join(path)} --help`"
    assert ":func:" not in res.output and ":class:" not in res.output


@pytest.mark.parametrize(("path", "cmd"), [((), main), *COMMANDS], ids=["wsi-screen", *_ids(COMMANDS)])
def test_every_option_has_help(path: tuple[str, ...], cmd: click.Command) -> None:
    ctx = click.Context(cmd, info_name=path[-1] if path else "wsi-screen")
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{' '.join(path)} {'/'.join(param.opts)} has no help text"


def test_group_help_lists_commands_whole() -> None:
    """The top-level help shows each command's summary in full, never cut off with '...'."""
    res = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert res.exit_code == 0
    listing = res.output.split("Commands:", 1)[1]
    assert "..." not in listing
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None and cmd.short_help, f"{name} has no short_help"
        assert " ".join(listing.split()).count(cmd.short_help) == 1, name


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=_ids(LEAVES))
def test_shared_options_share_names_and_defaults(path: tuple[str, ...], cmd: click.Command) -> None:
    ctx = click.Context(cmd)
    by_flag = {flag: p for p in cmd.get_params(ctx) if isinstance(p, click.Option) for flag in p.opts}
    if path in NO_OUTPUT:
        assert "-o" not in by_flag and "--output" not in by_flag
    else:
        out = by_flag.get("--output")
        assert out is not None, f"{' '.join(path)}: no -o/--output"
        assert out.opts == ["-o", "--output"] and not out.hidden
        assert out.metavar == "OUT"
    old = by_flag.get("--out")
    if path in OLD_OUT:
        assert old is not None and old.hidden, f"{' '.join(path)}: --out is a hidden deprecated alias"
    else:
        assert old is None
    if "--device" in by_flag:
        dev = by_flag["--device"]
        assert dev.opts == ["--device"]
        assert dev.default == "auto" and dev.show_default, f"{' '.join(path)}: --device default"
        assert dev.metavar == "auto|cpu|cuda[:N]"


def test_repeatable_options_say_so() -> None:
    """Options that may be given more than once say it in their help."""
    for path, cmd in LEAVES:
        for p in cmd.get_params(click.Context(cmd)):
            if isinstance(p, click.Option) and p.multiple:
                assert "repeatable" in (p.help or ""), f"{' '.join(path)} {p.opts[0]}"
