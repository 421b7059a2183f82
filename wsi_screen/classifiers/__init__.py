"""Patch classifiers: model bundles, shipped models and the timm inference engine."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.errors import ModelBundleError

__all__ = ["ModelBundle", "models_dir", "resolve_model", "shipped_models"]


def models_dir() -> Path:
    """Folder of the models shipped inside the package."""
    return Path(str(resources.files("wsi_screen") / "models"))


def shipped_models() -> list[str]:
    """Names of the shipped classifier bundles (folders with a model.json)."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "model.json").is_file())


def resolve_model(name_or_path: str | Path) -> ModelBundle:
    """Load a bundle from a folder path or by the name of a shipped model (e.g. ``default``).

    Raises:
        ModelBundleError: neither a bundle folder nor a shipped model name.
    """
    p = Path(name_or_path)
    if p.is_dir():
        return ModelBundle.load(p)
    candidate = models_dir() / str(name_or_path)
    if (candidate / "model.json").is_file():
        return ModelBundle.load(candidate)
    names = ", ".join(shipped_models()) or "none yet"
    msg = f"model {str(name_or_path)!r}: not a bundle folder nor a shipped model (shipped: {names})"
    raise ModelBundleError(msg)
