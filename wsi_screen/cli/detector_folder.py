"""What ``train-detector`` and ``evaluate-detector`` read from and write into a YOLO model folder.

``detector.json`` of a trained folder (its architecture from the closed list, the training
settings and ultralytics' best validation epoch) and the operating confidence that
``evaluate-detector --fit-conf`` records in it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from wsi_screen.cli.options import CommandError


def best_val_row(results_csv: Path) -> dict[str, float]:
    """Validation figures of the epoch whose weights were kept (ultralytics' ``best.pt``).

    ultralytics keeps the epoch of highest fitness, 0.1 x mAP50 + 0.9 x mAP50-95.
    """
    from wsi_screen.errors import ModelBundleError
    from wsi_screen.textfiles import read_text

    if not results_csv.is_file():
        return {}
    text = read_text(results_csv, error=ModelBundleError)
    raw = [{k.strip(): v.strip() for k, v in row.items() if k} for row in csv.DictReader(text.splitlines())]
    keys = {
        "epoch": "epoch",
        "precision": "metrics/precision(B)",
        "recall": "metrics/recall(B)",
        "map50": "metrics/mAP50(B)",
        "map50_95": "metrics/mAP50-95(B)",
    }
    rows = [{name: float(r[col]) for name, col in keys.items() if col in r} for r in raw]
    rows = [r for r in rows if "map50" in r and "map50_95" in r]
    if not rows:
        return {}
    return max(rows, key=lambda r: 0.1 * r["map50"] + 0.9 * r["map50_95"])


def model_conf(spec: str) -> float:
    """The operating confidence a YOLO model folder records (``DEFAULT_CONF`` when none)."""
    from wsi_screen.detectors.yolo import DEFAULT_CONF
    from wsi_screen.detectors.yolo_folder import load_model_folder
    from wsi_screen.errors import WsiScreenError

    try:
        cfg = load_model_folder(spec).config  # checked: conf is a number in [0, 1] or absent
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    value = cfg.get("conf", DEFAULT_CONF)
    return float(value) if isinstance(value, int | float) else DEFAULT_CONF


def write_fitted_conf(spec: str, report: dict[str, Any]) -> Path:
    """Record the best-F1 confidence and how it was fitted in the model's detector.json."""
    from wsi_screen.detectors.yolo import CONFIG_FILE
    from wsi_screen.detectors.yolo_folder import load_model_folder
    from wsi_screen.io import atomic_write_text

    folder = load_model_folder(spec)
    weights, cfg = folder.path, dict(folder.config)
    best = report["best_f1"]
    cfg["conf"] = best["threshold"]
    cfg["conf_fit"] = {
        "rule": "score threshold of best F1 at IoU 0.5 (0.05-0.95, step 0.05; ties: the higher)",
        "data": report["data"],
        "split": report["split"],
        "classes": report["classes"],
        "field_um": report["field_um"],
        "mpp": report["mpp"],
        "n_images": report["counts"]["n_images"],
        "n_gt": report["counts"]["n_gt"],
        "precision": best["precision"],
        "recall": best["recall"],
        "f1": best["f1"],
    }
    path = weights.parent / CONFIG_FILE
    atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")
    return path


def training_plan(
    arch: str | None, init: str | None, model_name: str | None, out_dir: Path
) -> tuple[str, str]:
    """The architecture (closed list) and the display name a training run will record, checked first.

    Both are settled before any data is prepared or ultralytics imported: ``--arch`` (a name, or
    an architecture YAML read and checked by wsi-screen), else that of ``--init``, else ``yolo11n``;
    ``--name``, else the output folder's name.

    Raises:
        CommandError: an architecture, weights folder or name that is refused.
    """
    from wsi_screen.detectors.yolo_folder import check_label
    from wsi_screen.detectors.yolo_folder import load_model_folder
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.yolo_train import training_architecture

    try:
        name = check_label(
            model_name or out_dir.resolve().name, "--name" if model_name else "the output folder"
        )
        if init is not None:
            return load_model_folder(init).architecture, name
        return training_architecture(arch or "yolo11n"), name
    except WsiScreenError as e:
        raise CommandError(str(e)) from e


def write_trained_json(out_dir: Path, values: dict[str, Any]) -> Path:
    """Write ``detector.json`` of a trained model folder; return its path.

    Args:
        out_dir: the model folder.
        values: ``name``, ``architecture``, ``class_names``, ``imgsz``, ``mpp``, ``training``.
    """
    from wsi_screen.detectors.yolo import CONFIG_FILE
    from wsi_screen.io import atomic_write_text

    cfg: dict[str, Any] = {
        "format_version": 1,
        "name": values["name"],
        "architecture": values["architecture"],
        "class_names": values["class_names"],
        "cell_classes": None,
        "imgsz": values["imgsz"],
        "mpp": values["mpp"],
        "training": values["training"],
        "val_ultralytics_best_epoch": best_val_row(out_dir / "run" / "results.csv"),
    }
    path = out_dir / CONFIG_FILE
    atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")
    return path
