"""The YOLO networks wsi-screen builds: a closed list of names, each from ultralytics' packaged YAML.

A detector folder (``detector.json`` ``architecture``) or a weights file (the ``yaml_file`` its
header records) names its network. The name is looked up in :data:`ARCHITECTURES` and the network
is described by the YAML file that ships inside the installed ultralytics package; the name itself
is never handed to ultralytics, which would resolve it on its own: a path is read from the working
folder, a ``-world`` or ``yoloe`` name switches the model class and its parser ``eval``s the file's
``activation`` line, a ``://`` name is a Triton server. Anything not in the list is refused with a
one-line error before ultralytics is imported.

A user's own architecture YAML (``train-detector --arch FILE.yaml``) is read here (size cap, no
anchors or aliases, shallow nesting, ``yaml.safe_load``), checked by
:func:`~wsi_screen.detectors.yolo_arch_check.check_architecture` (known ultralytics modules, plain
``torch.nn`` activations, bounded values) and accepted only when it describes one of these
networks, which is then built from the packaged YAML: ultralytics never reads the user's file.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

from wsi_screen.detectors.yolo_arch_check import check_architecture
from wsi_screen.errors import MissingDependencyError
from wsi_screen.errors import ModelBundleError
from wsi_screen.textfiles import read_text

_FAMILIES: dict[str, tuple[str, str, bool]] = {
    # name prefix: (packaged YAML under ultralytics/cfg/models, scale letters, one YAML per scale)
    "yolov5": ("v5/yolov5.yaml", "nsmlx", False),
    "yolov8": ("v8/yolov8.yaml", "nsmlx", False),
    "yolov9": ("v9/yolov9{}.yaml", "tsmce", True),
    "yolov10": ("v10/yolov10{}.yaml", "nsmblx", True),
    "yolo11": ("11/yolo11.yaml", "nsmlx", False),
    "yolo12": ("12/yolo12.yaml", "nsmlx", False),
}
ARCHITECTURES: dict[str, tuple[str, str]] = {
    f"{prefix}{s}": (rel.format(s) if per_scale else rel, "" if prefix == "yolov9" else s)
    for prefix, (rel, scales, per_scale) in _FAMILIES.items()
    for s in scales
}
"""Architecture name -> (packaged YAML path relative to ``ultralytics/cfg/models``, scale)."""
KNOWN = ", ".join(f"{p}{{{','.join(s)}}}" for p, (_, s, _) in _FAMILIES.items())
"""The closed list, spelled compactly for error messages (``yolov8{n,s,m,l,x}, ...``)."""
MAX_ARCH_YAML_BYTES = 64 << 10
"""Largest architecture YAML read (ultralytics' own are 2-3 kB)."""
_MAX_YAML_DEPTH = 6


def architecture_name(value: object, where: str | Path) -> str:
    """Return ``value`` if it names an architecture of the closed list.

    Raises:
        ModelBundleError: anything else (a path, a URL, a ``-world`` or ``yoloe`` name, a typo).
    """
    if isinstance(value, str) and value in ARCHITECTURES:
        return value
    shown = repr(value)[:80] if isinstance(value, str) else f"a {type(value).__name__}"
    msg = f"{where}: architecture {shown} is not one wsi-screen builds (known: {KNOWN})"
    raise ModelBundleError(msg)


def _ultralytics_dir() -> Path:
    """The installed ultralytics package folder, found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        msg = "the YOLO detector needs ultralytics: pip install ultralytics"
        raise MissingDependencyError(msg)
    return Path(next(iter(spec.submodule_search_locations))).resolve()


@functools.cache
def _packaged_text(rel: str) -> tuple[Path, str]:
    root = _ultralytics_dir() / "cfg" / "models"
    path = (root / rel).resolve()
    if not path.is_relative_to(root):  # a link inside the installed package pointing out of it
        msg = f"{path}: not inside the ultralytics package"
        raise ModelBundleError(msg)
    return path, read_text(path, error=ModelBundleError, max_bytes=MAX_ARCH_YAML_BYTES)


def packaged_architecture(name: str, nc: int) -> dict[str, Any]:
    """The network ``name`` (of :data:`ARCHITECTURES`) with ``nc`` classes, from the packaged YAML.

    Raises:
        ModelBundleError: ``name`` is not in the list, or the installed ultralytics lacks its YAML.
        MissingDependencyError: ultralytics is not installed.
    """
    import yaml

    rel, scale = ARCHITECTURES[architecture_name(name, "architecture")]
    path, text = _packaged_text(rel)
    arch = yaml.safe_load(text)
    if not isinstance(arch, dict):
        msg = f"{path}: not an architecture YAML"
        raise ModelBundleError(msg)
    arch.update(nc=nc, yaml_file=f"{name}.yaml", channels=3)
    if scale:
        arch["scale"] = scale
    return check_architecture(arch, path)


def _signature(arch: dict[str, Any]) -> tuple[object, ...]:
    """What decides the network an architecture dict builds (not its class count or file name)."""
    scales = arch.get("scales") or {}
    if scales:
        mult: object = list(scales[arch.get("scale") or next(iter(scales))])
    else:
        mult = [arch.get("depth_multiple", 1.0), arch.get("width_multiple", 1.0)]
    act = str(arch.get("activation") or "nn.SiLU()").removeprefix("torch.")
    return (
        arch.get("backbone"),
        arch.get("head"),
        mult,
        act,
        arch.get("reg_max", 16),
        bool(arch.get("end2end")),
    )


def same_network(recorded: dict[str, Any], packaged: dict[str, Any]) -> bool:
    """Whether two (checked) architecture dicts build the same network, class count aside."""
    return _signature(recorded) == _signature(packaged)


def resolve_architecture(declared: object, recorded: dict[str, Any], where: Path, weights: Path) -> str:
    """The architecture a model runs as: ``detector.json``'s, else the one its weights record.

    Args:
        declared: ``detector.json``'s ``architecture`` (None when absent).
        recorded: the checked architecture dict of the weights header.
        where: the ``detector.json`` (for messages).
        weights: the weights file (for messages).

    Raises:
        ModelBundleError: a name outside the list, none at all, or two names that disagree.
    """
    yaml_file = recorded.get("yaml_file")
    header = Path(yaml_file).stem if isinstance(yaml_file, str) else None
    if declared is None:
        if header is None:
            msg = f"{weights}: names no architecture (no detector.json 'architecture', no yaml_file in the header)"
            raise ModelBundleError(msg)
        return architecture_name(header, weights)
    name = architecture_name(declared, where)
    if header in ARCHITECTURES and header != name:
        msg = f"{where}: architecture {name!r}, but {weights.name} records {header!r}"
        raise ModelBundleError(msg)
    return name


def _check_events(text: str, where: Path) -> None:
    """Refuse anchors, aliases (shared subtrees a checker would walk again and again) and deep nesting."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            msg = f"{where}: YAML anchors and aliases are not allowed in an architecture"
            raise ModelBundleError(msg)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_YAML_DEPTH:
                msg = f"{where}: nested more than {_MAX_YAML_DEPTH} levels deep"
                raise ModelBundleError(msg)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def user_architecture(path: str | Path) -> str:
    """The name of the closed-list network a user's architecture YAML describes.

    The file is read and checked here; ultralytics never sees it.

    Raises:
        ModelBundleError: unreadable, too large, not plain YAML, a module, activation or value the
            checker refuses, or a network that is not one of :data:`ARCHITECTURES`.
    """
    import yaml

    path = Path(path)
    text = read_text(path, error=ModelBundleError, max_bytes=MAX_ARCH_YAML_BYTES)
    try:
        _check_events(text, path)
        arch = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        msg = f"{path}: not a plain YAML architecture ({' '.join(str(e).split())[:200]})"
        raise ModelBundleError(msg) from e
    if isinstance(arch, dict):
        arch.setdefault("nc", 1)  # the data set decides the class count
    arch = check_architecture(arch, path)
    scales = arch.get("scales") or {}
    if scales and not arch.get("scale"):
        # ultralytics takes the scale from the file name (yolov8s.yaml: s), else the first one
        guess = re.search(r"yolov?\d+([a-z])", path.stem)
        arch["scale"] = guess.group(1) if guess and guess.group(1) in scales else next(iter(scales))
    for name in ARCHITECTURES:
        if same_network(arch, packaged_architecture(name, 1)):
            return name
    msg = (
        f"{path}: not one of the networks wsi-screen builds ({KNOWN}); a detector is built from "
        "ultralytics' packaged YAML only"
    )
    raise ModelBundleError(msg)
