"""A small generic plug-in registry keyed by the CLI name, with entry-point discovery."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic
from typing import TypeVar

from wsi_screen.errors import UnknownPluginError
from wsi_screen.errors import WsiScreenError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map lower-case names to factories; third-party ones come from an entry-point group."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._factories: dict[str, Callable[..., T]] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorate a factory (or class) to register it under ``name``."""
        key = name.lower()

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if key in self._factories:
                msg = f"{self.kind} {key!r} is already registered"
                raise WsiScreenError(msg)
            self._factories[key] = factory
            return factory

        return deco

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=self.group):
            if ep.name.lower() not in self._factories:
                self._factories[ep.name.lower()] = ep.load()

    def names(self) -> list[str]:
        """Registered names, built-ins and plug-ins, sorted."""
        self._discover()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name`` or raise ``UnknownPluginError`` with suggestions."""
        key = name.lower()
        if key not in self._factories:
            self._discover()
        if key not in self._factories:
            names = sorted(self._factories)
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msg = f"unknown {self.kind} {name!r}; available: {', '.join(names)}{hint}"
            raise UnknownPluginError(msg)
        return self._factories[key]

    def create(self, name: str, **options: object) -> T:
        """Instantiate the plug-in ``name`` with keyword options."""
        return self.get(name)(**options)
