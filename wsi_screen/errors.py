"""One error hierarchy: every expected failure says which file and what was wrong."""

from __future__ import annotations


class WsiScreenError(Exception):
    """Base class of all expected wsi-screen errors."""

    stage: str = "pipeline"


class InputError(WsiScreenError):
    """An input file is missing, unreadable, truncated or of an unsupported kind."""

    stage = "read"


class UnsupportedInputError(InputError):
    """The file type is not one wsi-screen reads."""


class ConfigError(WsiScreenError, ValueError):
    """A configuration value is missing or out of range; the message names the dotted key."""

    stage = "config"


class ModelBundleError(WsiScreenError):
    """A model bundle folder is missing a file or has an invalid model.json."""

    stage = "model"


class UnknownPluginError(WsiScreenError, KeyError):
    """A detector or classifier name is not registered."""

    stage = "config"

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(WsiScreenError, ImportError):
    """An optional dependency is not installed."""

    stage = "setup"


class OutputError(WsiScreenError):
    """An output cannot be written where it belongs (e.g. through a symbolic link inside OUT)."""

    stage = "report"


class StoppedError(WsiScreenError):
    """An input read ahead of the model was abandoned because the run ended early (never reported)."""

    stage = "detect"

    def __init__(self, msg: str = "the run ended before this input was screened") -> None:
        super().__init__(msg)
