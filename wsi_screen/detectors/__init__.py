"""Cell localisers, selected by name (the ``--detector`` value)."""

from __future__ import annotations

from typing import Any

from wsi_screen.detectors.base import BaseDetector
from wsi_screen.detectors.base import Detector
from wsi_screen.registry import Registry

__all__ = ["DETECTORS", "BaseDetector", "Detector", "check_detector_options", "create_detector"]

DETECTORS: Registry[Detector] = Registry("detector", "wsi_screen.detectors")


@DETECTORS.register("foreground")
def _foreground(**options: Any) -> Detector:
    from wsi_screen.detectors.foreground import ForegroundDetector

    return ForegroundDetector(**options)


@DETECTORS.register("yolo")
def _yolo(**options: Any) -> Detector:
    # ultralytics (AGPL-3.0) is imported only inside this adapter module, and only when used.
    from wsi_screen.detectors.yolo import YoloDetector

    check_detector_options("yolo", options)
    return YoloDetector(**options)


def check_detector_options(name: str, options: dict[str, Any]) -> None:
    """Check a detector's options without building any model (a batch does this before hashing).

    The YOLO model folder is checked too (``detector.json``, the weights header and the
    architecture they name), without reading tensors or importing ultralytics.

    Raises:
        ConfigError: unknown option names or bad values, named as ``detector.options.KEY``.
        ModelBundleError: a YOLO model folder that would be refused when loaded.
    """
    import inspect

    from wsi_screen.errors import ConfigError

    if name == "foreground":
        from wsi_screen.detectors.foreground import ForegroundDetector

        ForegroundDetector(**options)  # only validates its options
    elif name == "yolo":
        from wsi_screen.detectors.yolo import YoloDetector
        from wsi_screen.detectors.yolo import check_yolo_options
        from wsi_screen.detectors.yolo_folder import load_model_folder

        sig = inspect.signature(YoloDetector)
        try:
            bound = sig.bind(**options)
        except TypeError as e:
            msg = f"detector.options: {e}; known yolo options: {', '.join(sig.parameters)}"
            raise ConfigError(msg) from e
        bound.apply_defaults()
        check_yolo_options(**{k: v for k, v in bound.arguments.items() if k != "weights"})
        load_model_folder(bound.arguments["weights"])  # detector.json, header, architecture


def create_detector(name: str, **options: Any) -> Detector:
    """Create a registered detector, e.g. ``create_detector("foreground", min_area_um2=15)``."""
    return DETECTORS.create(name, **options)
