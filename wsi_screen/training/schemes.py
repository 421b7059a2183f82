"""Class schemes: how source labels (folder names or file-name prefixes) map to target classes.

A scheme is a TOML file (shipped ones live in ``wsi_screen/configs/schemes/``)::

    name = "lineage5"
    label_from = "folder"          # or "prefix": the file-name part before the first "_"
    drop = ["KSC"]                 # source labels skipped on purpose

    [classes]                      # target class -> source labels, in output order
    ERY = ["EBO", "PEB"]
    LYM = ["LYT", "PLM", "HAC", "LYI"]

Source labels that are neither mapped nor dropped are *unmapped*: training skips them with a
warning, evaluation reports them as classes the model cannot assess.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path

from wsi_screen.errors import ConfigError
from wsi_screen.textfiles import parse_toml
from wsi_screen.textfiles import read_text

MAX_SCHEME_BYTES = 1 << 20
"""Largest scheme or tolerance file read (a scheme is a few hundred bytes)."""

LABEL_SOURCES = ("folder", "prefix")


@dataclass(frozen=True)
class ClassScheme:
    """A mapping from source labels to target classes.

    Attributes:
        name: identifier of the scheme.
        classes: target class -> tuple of source labels, in output order.
        drop: source labels skipped on purpose.
        label_from: ``folder`` (top-level class folder) or ``prefix`` (file-name prefix).
        description: one line for humans.
    """

    name: str
    classes: dict[str, tuple[str, ...]]
    drop: tuple[str, ...] = ()
    label_from: str = "folder"
    description: str = ""
    _lookup: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the scheme and build the source -> target lookup."""
        if self.label_from not in LABEL_SOURCES:
            msg = f"scheme {self.name}: label_from={self.label_from!r}; expected folder or prefix"
            raise ConfigError(msg)
        if not self.classes:
            msg = f"scheme {self.name}: [classes] is empty"
            raise ConfigError(msg)
        lookup: dict[str, str] = {}
        for target, sources in self.classes.items():
            for src in sources:
                key = src.upper()
                if key in lookup and lookup[key] != target:
                    msg = f"scheme {self.name}: source label {src!r} maps to both {lookup[key]} and {target}"
                    raise ConfigError(msg)
                lookup[key] = target
        both = sorted(set(lookup) & {d.upper() for d in self.drop})
        if both:
            msg = f"scheme {self.name}: label(s) {', '.join(both)} are both mapped and dropped"
            raise ConfigError(msg)
        self._lookup.update(lookup)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Target classes in output order."""
        return tuple(self.classes)

    def map(self, label: str) -> str | None:
        """Return the target class of a source label, or None when it is dropped or unmapped."""
        return self._lookup.get(label.upper())

    def is_dropped(self, label: str) -> bool:
        """Whether ``label`` is dropped on purpose."""
        return label.upper() in {d.upper() for d in self.drop}

    def restricted_to(self, present: set[str]) -> ClassScheme:
        """Return a copy keeping only target classes that have at least one present source label.

        Args:
            present: source labels found in a data set.
        """
        up = {p.upper() for p in present}
        kept = {t: s for t, s in self.classes.items() if any(x.upper() in up for x in s)}
        if not kept:
            msg = f"scheme {self.name}: none of its classes occur in the data"
            raise ConfigError(msg)
        return ClassScheme(
            name=self.name,
            classes=kept,
            drop=self.drop,
            label_from=self.label_from,
            description=self.description,
        )

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable description (recorded in bundles and reports)."""
        return {
            "name": self.name,
            "label_from": self.label_from,
            "classes": {k: list(v) for k, v in self.classes.items()},
            "drop": list(self.drop),
        }


def identity_scheme(labels: list[str], *, name: str = "folders") -> ClassScheme:
    """Build a scheme that keeps every source label as its own class (sorted).

    Example:
        >>> identity_scheme(["BLA", "ART"]).class_names
        ('ART', 'BLA')
    """
    return ClassScheme(name=name, classes={lab: (lab,) for lab in sorted(set(labels))})


def shipped_scheme_names() -> list[str]:
    """Names of the schemes shipped in ``wsi_screen/configs/schemes``."""
    folder = resources.files("wsi_screen") / "configs" / "schemes"
    return sorted(
        p.name.removesuffix(".toml")
        for p in folder.iterdir()
        if p.name.endswith(".toml") and not p.name.startswith("tolerance")
    )


def _read_toml(path: Path | str, what: str) -> dict[str, object]:
    p = Path(path)
    if not p.is_file():
        shipped = resources.files("wsi_screen") / "configs" / "schemes" / f"{path}.toml"
        if shipped.is_file():
            return parse_toml(shipped.read_text(encoding="utf-8"), str(path), error=ConfigError)
        msg = f"{path}: {what} file not found (and no shipped {what} of that name)"
        raise ConfigError(msg)
    # a user's scheme file: size-capped before it is read, depth-limited (textfiles)
    return parse_toml(read_text(p, error=ConfigError, max_bytes=MAX_SCHEME_BYTES), p, error=ConfigError)


def load_scheme(path_or_name: Path | str) -> ClassScheme:
    """Load a scheme from a TOML file, or a shipped scheme by name (``matek21``, ``lineage5``...).

    Raises:
        ConfigError: the file is missing, not TOML, or describes an invalid scheme.

    Example:
        >>> load_scheme("lineage5").map("PEB")
        'ERY'
    """
    return scheme_from_dict(_read_toml(path_or_name, "scheme"), path_or_name)


def scheme_from_dict(data: dict[str, object], where: Path | str) -> ClassScheme:
    """Build a scheme from the mapping of a scheme file (or an inline table of a manifest).

    Raises:
        ConfigError: the mapping describes an invalid scheme (the message names ``where``).
    """
    classes_raw = data.get("classes")
    if not isinstance(classes_raw, dict):
        msg = f"{where}: scheme needs a [classes] table (target = [source labels])"
        raise ConfigError(msg)
    classes: dict[str, tuple[str, ...]] = {}
    for target, sources in classes_raw.items():
        if isinstance(sources, str):
            sources = [sources]
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            msg = f"{where}: classes.{target} must be a list of source labels"
            raise ConfigError(msg)
        classes[str(target)] = tuple(sources)
    drop = data.get("drop", [])
    if not isinstance(drop, list):
        msg = f"{where}: drop must be a list of labels"
        raise ConfigError(msg)
    return ClassScheme(
        name=str(data.get("name", Path(str(where)).stem)),
        classes=classes,
        drop=tuple(str(d) for d in drop),
        label_from=str(data.get("label_from", "folder")),
        description=str(data.get("description", "")),
    )


def load_tolerance(path: Path | str | None = None) -> list[tuple[str, str]]:
    """Load tolerated confusion pairs (``pairs = [["NGB", "NGS"], ...]``); default when None.

    Example:
        >>> ("NGB", "NGS") in load_tolerance()
        True
    """
    data = _read_toml(path if path is not None else "tolerance_default", "tolerance")
    pairs = data.get("pairs")
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(c, str) for c in p) for p in pairs
    ):
        msg = f"{path}: tolerance file needs pairs = [[CODE, CODE], ...]"
        raise ConfigError(msg)
    return [(str(a), str(b)) for a, b in pairs]
