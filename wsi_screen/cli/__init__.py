"""The ``wsi-screen`` command group.

Commands live in one module each and are imported only when invoked, so ``wsi-screen --help``
stays fast and heavy libraries (torch, timm, ultralytics, ray) load only where needed.
Logging is configured here and nowhere else.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os

import click

from wsi_screen import __version__

# command name -> "module:function"; each module defines a click command.
_COMMANDS: dict[str, str] = {
    "run": "wsi_screen.cli.run:run",
    "batch": "wsi_screen.cli.batch:batch",
    "train": "wsi_screen.cli.train:train",
    "evaluate": "wsi_screen.cli.evaluate:evaluate",
    "calibrate": "wsi_screen.cli.calibrate:calibrate",
    "explain": "wsi_screen.cli.explain:explain",
    "models": "wsi_screen.cli.models:models",
    "train-detector": "wsi_screen.cli.detector:train_detector",
    "evaluate-detector": "wsi_screen.cli.detector:evaluate_detector",
    "convert-weights": "wsi_screen.cli.convert:convert_weights",
    "review": "wsi_screen.cli.review:review",
    "report": "wsi_screen.cli.report:report",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List the commands whose module exists."""
        names = []
        for name, target in _COMMANDS.items():
            if importlib.util.find_spec(target.split(":")[0]) is not None:
                names.append(name)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return the command ``cmd_name``."""
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        if importlib.util.find_spec(module_name) is None:
            return None
        cmd = getattr(importlib.import_module(module_name), attr)
        assert isinstance(cmd, click.Command)  # noqa: S101 - internal invariant, not user input
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsi-screen")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Logging verbosity.",
)
def main(log_level: str) -> None:
    """Screen bone-marrow and blood smears: find white cells, classify them, report for review.

    Output supports a morphologist's review; it is not a diagnosis.
    """
    from wsi_screen.textsafe import EscapingFormatter

    # torch's OpenMP threads spin while idle by default; the pipeline's reader and writer threads
    # share the cores with them, so idle model threads must sleep (read before torch loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=getattr(logging, log_level.upper()))
    for handler in root.handlers:  # ours only: file names in messages cannot forge lines or colours
        if handler not in before:
            handler.setFormatter(
                EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
            )
