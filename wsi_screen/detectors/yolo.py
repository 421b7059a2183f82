"""YOLO cell detector (ultralytics, AGPL-3.0): running a trained model on tiles.

ultralytics itself is imported only by :mod:`wsi_screen.detectors.ultralytics_env`, lazily, inside
:func:`~wsi_screen.detectors.ultralytics_env.ultralytics_session`, never at package import.
Training a YOLO detector is :mod:`wsi_screen.training.yolo_train`.

A model folder (``wsi_screen/models/yolo-wbc/``, see :mod:`wsi_screen.detectors.yolo_folder`)
holds ``weights.safetensors`` (tensors and a checked header: no pickle, see
:mod:`wsi_screen.detectors.yolo_weights`) and ``detector.json`` with the training scale (``mpp``),
the class names, the training image size and the architecture, one of a closed list built from
ultralytics' packaged YAML (:mod:`wsi_screen.detectors.yolo_archs`); the tensors must load into it
exactly. An ultralytics ``.pt`` checkpoint is a pickle that can run code when loaded: it is always
refused (``wsi-screen convert-weights`` converts one once).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsi_screen.detectors.base import BaseDetector
from wsi_screen.detectors.ultralytics_env import as_yolo
from wsi_screen.detectors.ultralytics_env import ultralytics_session
from wsi_screen.detectors.yolo_folder import CONFIG_FILE
from wsi_screen.detectors.yolo_folder import DEFAULT_MODEL
from wsi_screen.detectors.yolo_folder import MODELS_DIR
from wsi_screen.detectors.yolo_folder import PICKLE_WEIGHTS_FILE
from wsi_screen.detectors.yolo_folder import WEIGHTS_FILE
from wsi_screen.detectors.yolo_folder import load_model_folder
from wsi_screen.detectors.yolo_folder import resolve_model_dir
from wsi_screen.detectors.yolo_weights import build_detection_model
from wsi_screen.errors import ConfigError
from wsi_screen.errors import InputError
from wsi_screen.jpeg import rgb_to_bgr
from wsi_screen.sources.base import PAD_VALUE
from wsi_screen.types import Cell
from wsi_screen.types import Tile

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_CONF",
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "PICKLE_WEIGHTS_FILE",
    "WEIGHTS_FILE",
    "YoloDetector",
    "check_yolo_options",
    "content_window",
    "resolve_model_dir",
]

log = logging.getLogger(__name__)

DEFAULT_CONF = 0.25
"""Detection confidence cut of a model folder whose ``detector.json`` names none."""
_STRIDE = 32


def content_window(rgb: np.ndarray, pad_value: int = PAD_VALUE) -> tuple[int, int, int, int]:
    """Return (x0, y0, x1, y1) of ``rgb`` without the padding rows/columns on its borders.

    Tiles that reach past the image are padded with ``PAD_VALUE`` (white). The straight edge
    between a pale smear and white padding is nothing the model saw in training (ultralytics pads
    with grey) and draws false boxes, so the adapter predicts on the image part only.
    """
    is_pad = np.all(rgb == pad_value, axis=2)
    cols = ~is_pad.all(axis=0)
    rows = ~is_pad.all(axis=1)
    if not cols.any():
        return (0, 0, 0, 0)
    x0, x1 = int(np.argmax(cols)), len(cols) - int(np.argmax(cols[::-1]))
    y0, y1 = int(np.argmax(rows)), len(rows) - int(np.argmax(rows[::-1]))
    return x0, y0, x1, y1


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"detector.options.{key} must be a finite number, got {value!r}"
        raise ConfigError(msg)
    return float(value)


def check_yolo_options(
    *,
    conf: object,
    iou: object,
    imgsz: object,
    classes: object,
    device: object,
    mpp: object,
) -> None:
    """Refuse YOLO options that would crash later or silently find nothing (``imgsz = 0``)."""
    if conf is not None and not 0.0 <= _number("conf", conf) <= 1.0:
        msg = f"detector.options.conf must be in [0, 1], got {conf}"
        raise ConfigError(msg)
    if not 0.0 < _number("iou", iou) <= 1.0:
        msg = f"detector.options.iou must be in (0, 1], got {iou}"
        raise ConfigError(msg)
    if imgsz is not None and (
        isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 32 <= imgsz <= 8192
    ):
        msg = f"detector.options.imgsz must be a whole number of pixels in [32, 8192] (or absent), got {imgsz!r}"
        raise ConfigError(msg)
    if classes is not None and (
        isinstance(classes, str | bytes)
        or not isinstance(classes, Sequence)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes)
    ):
        msg = f"detector.options.classes must be a list of class indices (e.g. [0]), got {classes!r}"
        raise ConfigError(msg)
    if not isinstance(device, str):
        msg = f"detector.options.device must be a string such as 'cpu' or 'cuda:0', got {device!r}"
        raise ConfigError(msg)
    if mpp is not None and not _number("mpp", mpp) > 0:
        msg = f"detector.options.mpp must be > 0, got {mpp}"
        raise ConfigError(msg)


def _ultralytics_version() -> str:
    from importlib.metadata import version

    return version("ultralytics")


_NO_BOXES = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))


class YoloDetector(BaseDetector):
    """Localise cells with an ultralytics YOLO model.

    Tiles are predicted at their own size (rounded up to the network stride), so one tile pixel is
    one network pixel and the scale the model was trained at (``target_mpp``) is kept.

    Args:
        weights: a ``weights.safetensors`` file, a model folder, a shipped name, or None for
            ``yolo-wbc``.
        conf: minimum confidence of a detection; None takes the model folder's ``conf`` (the
            operating point fitted on validation data, ``evaluate-detector --fit-conf``), else
            ``DEFAULT_CONF``.
        iou: IoU of ultralytics' per-tile non-maximum suppression.
        imgsz: network input side; None runs each tile at its own size (scale kept).
        classes: class indices to keep (None: the model folder's ``cell_classes``, else all).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        mpp: microns per pixel the model was trained at; None takes it from ``detector.json``.

    Example:
        >>> det = YoloDetector("yolo-wbc", conf=0.3)  # doctest: +SKIP
        >>> cells = det.detect(tile)  # doctest: +SKIP
    """

    name = "yolo"

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        conf: float | None = None,
        iou: float = 0.5,
        imgsz: int | None = None,
        classes: Sequence[int] | None = None,
        device: str = "cpu",
        mpp: float | None = None,
    ) -> None:
        check_yolo_options(
            conf=conf,
            iou=iou,
            imgsz=imgsz,
            classes=classes,
            device=device,
            mpp=mpp,
        )
        folder = load_model_folder(weights)  # checked before ultralytics is imported
        self.weights, self._cfg, self.architecture = folder.path, folder.config, folder.architecture
        self.conf = float(conf if conf is not None else self._cfg.get("conf", DEFAULT_CONF))
        self.iou = float(iou)
        self.imgsz = imgsz
        cfg_classes = self._cfg.get("cell_classes")
        self.classes = list(classes) if classes is not None else cfg_classes
        self.device = device
        # tiles per forward pass in detect_batch: on CPU a batch of 4 was no faster (measured,
        # docs/benchmarks.md), so one; on CUDA batches fill the device
        self.tiles_per_batch = 1 if str(device).startswith("cpu") else 8
        cfg_mpp = self._cfg.get("mpp")
        self._mpp = float(mpp) if mpp is not None else (float(cfg_mpp) if cfg_mpp else None)
        with ultralytics_session() as yolo_cls:
            net = build_detection_model(folder.weights, self.architecture)
            self._model = as_yolo(yolo_cls, net)
        self.class_names: dict[int, str] = dict(self._model.names)

    @property
    def target_mpp(self) -> float | None:
        """Microns per pixel of the model's training images (None: unknown, any scale)."""
        return self._mpp

    def params(self) -> dict[str, Any]:
        """Parameters echoed into reports."""
        return {
            "weights": str(self.weights),
            "model": self._cfg.get("name") or self.weights.parent.name,
            "architecture": self.architecture,
            "ultralytics": _ultralytics_version(),
            "conf": self.conf,
            "iou": self.iou,
            "imgsz": self.imgsz,
            "classes": self.classes,
            "class_names": self.class_names,
            "device": self.device,
            "mpp": self._mpp,
            "weights_format": "safetensors",
        }

    def predict_boxes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the model on one RGB image; return boxes (N x 4, xyxy px), scores, class ids."""
        return self.predict_boxes_batch([rgb])[0]

    def predict_boxes_batch(
        self, images: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`predict_boxes` of several images, in one forward pass per network input size.

        Images are grouped by shape (each group runs at its own size rounded up to the stride, or
        ``imgsz``), so batching never pads or rescales one to fit another: the results are those of
        one image at a time.
        """
        for rgb in images:
            if rgb.ndim != 3 or rgb.shape[2] != 3:
                msg = f"yolo detector: expected an H x W x 3 RGB image, got shape {rgb.shape}"
                raise InputError(msg)
        groups: dict[tuple[int, int], list[int]] = {}  # ultralytics letterboxes mixed shapes differently
        for i, rgb in enumerate(images):
            groups.setdefault((rgb.shape[0], rgb.shape[1]), []).append(i)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [_NO_BOXES] * len(images)
        for (h, w), idx in groups.items():
            # None: the tile's own size rounded up to the stride, so the model's scale is kept
            size = max(_STRIDE, -(-max(h, w) // _STRIDE) * _STRIDE) if self.imgsz is None else self.imgsz
            bgr = [rgb_to_bgr(images[i]) for i in idx]  # ultralytics: numpy is BGR
            with ultralytics_session():
                results = self._model.predict(
                    bgr,
                    conf=self.conf,
                    iou=self.iou,
                    imgsz=size,
                    classes=self.classes,
                    device=self.device,
                    verbose=False,
                    save=False,
                    batch=len(bgr),
                )
            for i, res in zip(idx, results, strict=True):
                boxes = res.boxes
                if boxes is not None and len(boxes):
                    out[i] = (
                        boxes.xyxy.cpu().numpy().astype(np.float32),
                        boxes.conf.cpu().numpy().astype(np.float32),
                        boxes.cls.cpu().numpy().astype(np.int64),
                    )
        return out

    def detect(self, tile: Tile) -> list[Cell]:
        """Return the cells this tile owns, in level-0 coordinates.

        Ownership is decided on the box centre (the pipeline widens the core by a seam margin of
        2 tile pixels, see :func:`wsi_screen.stages.detect_cells`). With a tile overlap of at
        least one cell diameter plus twice that margin, a cell cut by a tile edge has its true
        centre outside that tile's core and its cut box's centre too, so it is counted once; with
        a smaller overlap, run :func:`wsi_screen.detectors.merge.merge_cells` over all cells of
        the source.
        """
        return self.detect_batch([tile])[0]

    def detect_batch(self, tiles: Sequence[Tile]) -> list[list[Cell]]:
        """:meth:`detect` of several tiles, predicted together (:meth:`predict_boxes_batch`)."""
        windows = [content_window(t.pixels) for t in tiles]
        live = [i for i, (x0, y0, x1, y1) in enumerate(windows) if x1 > x0 and y1 > y0]  # not all padding
        crops = [tiles[i].pixels[windows[i][1] : windows[i][3], windows[i][0] : windows[i][2]] for i in live]
        out: list[list[Cell]] = [[] for _ in tiles]
        for i, (xyxy, scores, _) in zip(live, self.predict_boxes_batch(crops), strict=True):
            out[i] = self._owned_cells(tiles[i], xyxy, scores, windows[i][0], windows[i][1])
        return out

    def _owned_cells(
        self, tile: Tile, xyxy: np.ndarray, scores: np.ndarray, x_off: int, y_off: int
    ) -> list[Cell]:
        """The boxes of one tile's content window as the cells the tile owns."""
        xyxy = xyxy.copy()
        xyxy[:, [0, 2]] += x_off
        xyxy[:, [1, 3]] += y_off
        cells: list[Cell] = []
        for box, score in zip(xyxy, scores, strict=True):
            x0, y0 = tile.edge_to_level0(float(box[0]), float(box[1]))
            x1, y1 = tile.edge_to_level0(float(box[2]), float(box[3]))
            # box edges are continuous (pixel i spans [i, i+1)); cell centres use pixel indices
            cx, cy = (x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5
            if not tile.owns(cx, cy):
                continue
            bbox = (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
            cells.append(
                Cell(
                    cell_id=-1,
                    source_id=tile.source_id,
                    x=cx,
                    y=cy,
                    bbox=bbox,
                    score=float(score),
                    detector=self.name,
                    tile_index=tile.index,
                )
            )
        return cells
