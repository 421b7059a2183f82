"""Several labelled sources (labs) as one training set.

A manifest names each source's folder, its pixel size and its class mapping.

A manifest is a small TOML file::

    name = "marrow13"
    classes = ["ART", "BAS", "BLA", ...]      # the model's classes, in output order

    [[source]]
    name = "matek"                            # recorded with every image and in the bundle
    root = "../../../shared/data/matek_bm"    # relative to the manifest file
    mpp = 0.0862                              # um/px of the source's images
    scheme = "matek21"                        # a shipped scheme, a scheme file, or an inline table

    [[source]]
    name = "pbc"
    root = "../../../shared/data/pbc"
    mpp = 0.099
    [source.scheme]
    label_from = "prefix"
    drop = ["IG", "NEUTROPHIL"]
    [source.scheme.classes]
    ART = ["PLATELET"]
    ...

Every image is resampled by ``mpp / model mpp`` when it is loaded, exactly as screening resamples
a field (:func:`~wsi_screen.training.datasets.fit_patch`), so the patches of every source cover
the same microns.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

from wsi_screen.errors import ConfigError
from wsi_screen.textfiles import parse_toml
from wsi_screen.textfiles import read_text
from wsi_screen.training.datasets import LabelledImage
from wsi_screen.training.datasets import PatchSet
from wsi_screen.training.datasets import scan_folder
from wsi_screen.training.schemes import ClassScheme
from wsi_screen.training.schemes import load_scheme
from wsi_screen.training.schemes import scheme_from_dict

MAX_MANIFEST_BYTES = 256 << 10
MAX_SOURCES = 16
MPP_RANGE = (0.01, 10.0)


@dataclass(frozen=True)
class TrainingSource:
    """One labelled source: a folder of one lab's images at one pixel size."""

    name: str
    root: Path
    mpp: float
    scheme: ClassScheme | None
    root_as_written: str = ""
    """The root as the manifest gives it (relative to the manifest): what bundles record, so a
    shipped bundle names no folder of the machine it was trained on."""

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable description (recorded in the bundle)."""
        return {
            "name": self.name,
            "root": self.root_as_written or self.root.name,
            "mpp": self.mpp,
            "scheme": self.scheme.to_json() if self.scheme else None,
        }


@dataclass(frozen=True)
class Manifest:
    """The sources of a training set and the model's class order."""

    path: Path
    name: str
    classes: tuple[str, ...]
    sources: tuple[TrainingSource, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable description (recorded in the bundle)."""
        return {
            "path": self.path.name,
            "name": self.name,
            "classes": list(self.classes),
            "sources": [s.to_json() for s in self.sources],
        }


def is_manifest(path: Path) -> bool:
    """Whether ``path`` names a manifest file rather than a class-folder data set."""
    return path.is_file() and path.suffix.lower() == ".toml"


def _source(raw: object, base: Path, where: str) -> TrainingSource:
    if not isinstance(raw, dict):
        msg = f"{where}: each [[source]] must be a table"
        raise ConfigError(msg)
    name, root, mpp = raw.get("name"), raw.get("root"), raw.get("mpp")
    if not isinstance(name, str) or not name.isidentifier():
        msg = f"{where}: source name {name!r} must be a short identifier (letters, digits, _)"
        raise ConfigError(msg)
    if not isinstance(root, str) or not root:
        msg = f"{where}: source {name}: root must be a folder path"
        raise ConfigError(msg)
    if isinstance(mpp, bool) or not isinstance(mpp, int | float) or not MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        msg = f"{where}: source {name}: mpp must be a pixel size in um ({MPP_RANGE[0]}-{MPP_RANGE[1]})"
        raise ConfigError(msg)
    folder = (base / root).resolve() if not Path(root).is_absolute() else Path(root)
    spec = raw.get("scheme")
    scheme: ClassScheme | None
    if spec is None:
        scheme = None
    elif isinstance(spec, str):
        scheme = load_scheme(spec if not spec.endswith(".toml") else base / spec)
    elif isinstance(spec, dict):
        scheme = scheme_from_dict({"name": f"{name}-inline", **spec}, f"{where} (source {name})")
    else:
        msg = f"{where}: source {name}: scheme must be a name, a file or a table"
        raise ConfigError(msg)
    return TrainingSource(name=name, root=folder, mpp=float(mpp), scheme=scheme, root_as_written=root)


def load_manifest(path: Path | str) -> Manifest:
    """Read and check a training manifest.

    Raises:
        ConfigError: the file is too large, not TOML, or names sources or classes wrongly.
    """
    path = Path(path)
    data = parse_toml(
        read_text(path, error=ConfigError, max_bytes=MAX_MANIFEST_BYTES), path, error=ConfigError
    )
    raw_sources = data.get("source")
    if not isinstance(raw_sources, list) or not raw_sources:
        msg = f"{path}: a manifest needs at least one [[source]] table"
        raise ConfigError(msg)
    if len(raw_sources) > MAX_SOURCES:
        msg = f"{path}: {len(raw_sources)} sources, more than {MAX_SOURCES}"
        raise ConfigError(msg)
    sources = tuple(_source(r, path.parent, str(path)) for r in raw_sources)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        msg = f"{path}: source names must differ, got {names}"
        raise ConfigError(msg)
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        msg = f"{path}: classes must be the list of the model's class codes, in output order"
        raise ConfigError(msg)
    if len(set(classes)) != len(classes):
        msg = f"{path}: classes lists a class twice"
        raise ConfigError(msg)
    return Manifest(path=path, name=str(data.get("name", path.stem)), classes=tuple(classes), sources=sources)


def scan_manifest(manifest: Manifest, model_mpp: float) -> PatchSet:
    """All labelled images of every source, tagged with their source and resampling factor.

    Raises:
        ConfigError: a source maps images to a class the manifest does not list, or a listed
            class has no image in any source.
    """
    items: list[LabelledImage] = []
    dropped: dict[str, int] = {}
    unmapped: dict[str, list[Path]] = {}
    for src in manifest.sources:
        ps = scan_folder(src.root, src.scheme)
        extra = sorted({str(it.target) for it in ps.items} - set(manifest.classes))
        if extra:
            msg = f"{manifest.path}: source {src.name} maps images to {', '.join(extra)}, not in classes"
            raise ConfigError(msg)
        scale = src.mpp / model_mpp
        items.extend(replace(it, source=src.name, scale=scale) for it in ps.items)
        for label, n in ps.dropped.items():
            dropped[f"{src.name}:{label}"] = n
        for label, paths in ps.unmapped.items():
            unmapped[f"{src.name}:{label}"] = paths
    present = {it.target for it in items}
    missing = [c for c in manifest.classes if c not in present]
    if missing:
        msg = f"{manifest.path}: no source has images of {', '.join(missing)}"
        raise ConfigError(msg)
    return PatchSet(
        root=manifest.path,
        items=tuple(items),
        dropped=dropped,
        unmapped=unmapped,
        class_names=manifest.classes,
    )


def relative_names(ps: PatchSet, manifest: Manifest | None) -> list[str]:
    """Each item's path relative to its source's root (as ``split.json`` lists them)."""
    if manifest is None:
        return [str(it.path.relative_to(ps.root)) for it in ps.items]
    roots = {s.name: s.root for s in manifest.sources}
    return [str(it.path.relative_to(roots[it.source])) for it in ps.items]


def scan_data(data: Path, model_mpp: float, scheme: ClassScheme | None) -> tuple[PatchSet, Manifest | None]:
    """A class-folder data set (through ``scheme``) or every source of a manifest.

    Raises:
        ConfigError: a scheme given with a manifest (each source names its own), or what
            :func:`load_manifest` / :func:`scan_manifest` refuse.
    """
    if is_manifest(data):
        if scheme is not None:
            msg = f"{data}: a manifest names each source's scheme; --scheme applies to a folder only"
            raise ConfigError(msg)
        manifest = load_manifest(data)
        return scan_manifest(manifest, model_mpp), manifest
    ps = scan_folder(data, scheme)
    if scheme is not None:
        ps = scan_folder(data, scheme.restricted_to({it.source_label for it in ps.items}))
    return ps, None
