"""Cell localisers, selected by name (the ``--detector`` value)."""

from __future__ import annotations

from typing import Any

from wsi_screen.detectors.base import BaseDetector
from wsi_screen.detectors.base import Detector
from wsi_screen.registry import Registry

__all__ = ["DETECTORS", "BaseDetector", "Detector", "create_detector"]

DETECTORS: Registry[Detector] = Registry("detector", "wsi_screen.detectors")


@DETECTORS.register("foreground")
def _foreground(**options: Any) -> Detector:
    from wsi_screen.detectors.foreground import ForegroundDetector

    return ForegroundDetector(**options)


@DETECTORS.register("yolo")
def _yolo(**options: Any) -> Detector:
    # ultralytics (AGPL-3.0) is imported only inside this adapter module, and only when used.
    import inspect

    from wsi_screen.detectors.yolo import YoloDetector
    from wsi_screen.errors import ConfigError

    try:
        inspect.signature(YoloDetector).bind(**options)
    except TypeError as e:
        known = ", ".join(inspect.signature(YoloDetector).parameters)
        msg = f"detector.options: {e}; known yolo options: {known}"
        raise ConfigError(msg) from e
    return YoloDetector(**options)


def create_detector(name: str, **options: Any) -> Detector:
    """Create a registered detector, e.g. ``create_detector("foreground", min_area_um2=15)``."""
    return DETECTORS.create(name, **options)
