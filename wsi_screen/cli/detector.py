"""``wsi-screen train-detector`` and ``wsi-screen evaluate-detector``.

Training writes a YOLO model folder (``weights.safetensors`` + ``detector.json``) usable as
``--detector yolo --detector-weights DIR``; evaluation writes ``metrics.json`` with ``precision``,
``recall`` and ``f1`` at the top level for any detector, ``foreground`` included.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import output_option
from wsi_screen.cli.options import torch_device_option

log = logging.getLogger(__name__)


def _split_classes(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


@click.command("train-detector", short_help="Train a YOLO cell detector on YOLO-format data.")
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@output_option("Model folder to write (weights.safetensors, detector.json, run/)", dest="out_dir")
@click.option(
    "--arch",
    default=None,
    metavar="NAME|FILE.yaml",
    help="Architecture: yolov5/yolov8/yolo11/yolo12 n,s,m,l,x, yolov9 t,s,m,c,e or yolov10 "
    "n,s,m,b,l,x, built from the YAML packaged with ultralytics (nothing is downloaded); or an "
    "architecture YAML describing one of them (checked by wsi-screen, never read by ultralytics). "
    "Default: yolo11n, or the architecture of --init.",
)
@click.option(
    "--init",
    default=None,
    metavar="WEIGHTS|DIR|NAME",
    help="Fine-tune from these YOLO weights (weights.safetensors, a model folder or a shipped "
    "name such as yolo-wbc) instead of random ones; the architecture is theirs.",
)
@click.option(
    "--lr0",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Initial learning rate (default: ultralytics' automatic choice).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Training epochs.")
@click.option(
    "--imgsz", type=click.IntRange(min=32), default=416, show_default=True, help="Training image side in px."
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per training batch."
)
@click.option(
    "--classes",
    default=None,
    metavar="NAME[,NAME...]",
    help="Classes to train on (e.g. WBC out of WBC,RBC,Platelets); default: all.",
)
@click.option(
    "--mpp",
    type=click.FloatRange(min=0.001, max=100.0),
    default=None,
    help="Microns per network pixel of the training images (recorded as the model's "
    "scale; tiles are resampled to it at prediction).",
)
@torch_device_option
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Data-loader worker processes (0: load in the training process).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--name",
    "model_name",
    default=None,
    help="Model name recorded in detector.json (a label: no '/', '\\' or ':'); default: the output folder's name.",
)
def train_detector(
    data: Path,
    out_dir: Path,
    arch: str | None,
    epochs: int,
    imgsz: int,
    batch: int,
    classes: str | None,
    mpp: float | None,
    device: str,
    workers: int,
    seed: int,
    model_name: str | None,
    init: str | None = None,
    lr0: float | None = None,
) -> None:
    """Train a YOLO cell detector on YOLO-format DATA (data.yaml, or images/ + labels/).

    Writes weights.safetensors and detector.json (use the folder as --detector-weights) and the
    ultralytics run (run/). A data set, architecture or device that cannot be used exits 2.
    """
    from wsi_screen.cli.detector_folder import training_plan
    from wsi_screen.cli.detector_folder import write_trained_json
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.training.detector_convert import prepare_yolo_dataset
    from wsi_screen.training.yolo_train import train_yolo

    wanted = _split_classes(classes)
    if init is not None and arch is not None:
        msg = "--arch and --init: a fine-tuned model keeps the architecture of its --init weights"
        raise click.UsageError(msg)
    # the architecture (closed list; a YAML is checked here, never read by ultralytics) and the
    # name are settled before any data is prepared or ultralytics imported
    arch_name, name = training_plan(arch, init, model_name, out_dir)
    try:
        device = _resolve_device(device)
        with tempfile.TemporaryDirectory(prefix="wsi_screen_yolo_data_") as tmp:
            # always a private copy of the labels: class selection, absolute paths, and
            # ultralytics' label caches are written there rather than into the user's data set
            yaml_path = prepare_yolo_dataset(data, tmp, classes=wanted)
            import yaml

            names = list(yaml.safe_load(yaml_path.read_text(encoding="utf-8"))["names"].values())
            weights = train_yolo(
                yaml_path,
                out_dir,
                arch=arch_name,
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                device=device,
                workers=workers,
                seed=seed,
                init=init,
                extra={"lr0": lr0, "optimizer": "AdamW"} if lr0 is not None else None,
            )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    training: dict[str, Any] = {"data": str(data), "classes": wanted, "epochs": epochs, "imgsz": imgsz}
    training.update(batch=batch, seed=seed, device=device, init=init, lr0=lr0)
    cfg_path = write_trained_json(
        out_dir,
        {
            "name": name,
            "architecture": arch_name,
            "class_names": names,
            "imgsz": imgsz,
            "mpp": mpp,
            "training": training,
        },
    )
    for path in (weights, cfg_path, out_dir / "run"):
        click.echo(f"wrote {path}{'/' if path.is_dir() else ''}")


def _resolve_device(spec: str) -> str:
    """``auto`` (or any spec) as the torch device string ultralytics is given: ``cpu`` or ``cuda:N``."""
    from wsi_screen.device import select_device

    return str(select_device(spec))


def _make_detector(spec: str, *, conf: float, device: str, options: dict[str, Any]) -> Any:  # noqa: ANN401
    from wsi_screen.detectors import create_detector

    if spec.lower() == "foreground":
        return create_detector("foreground", **options)
    # mAP needs the low-confidence tail; P/R/F1 are taken at ``conf`` afterwards
    device = _resolve_device(device)
    return create_detector("yolo", weights=spec, conf=min(conf, 0.001), device=device, **options)


def _per_image_csv(rows: list[dict[str, Any]]) -> str:
    from wsi_screen.textsafe import csv_cell

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "n_gt", "n_pred", "tp_iou", "tp_centre"])
    writer.writeheader()
    writer.writerows({**r, "image": csv_cell(str(r["image"]))} for r in rows)  # a name is never a formula
    return buf.getvalue()


@click.command("evaluate-detector", short_help="Score a cell detector on YOLO-format data.")
@click.argument("detector")
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@output_option("Folder for metrics.json and per_image.csv", dest="out_dir")
@click.option(
    "--classes",
    default=None,
    metavar="NAME[,NAME...]",
    help="Ground-truth classes that count as cells (e.g. WBC); default: all.",
)
@click.option("--split", default="val", show_default=True, help="Data set split to score.")
@click.option(
    "--conf",
    type=click.FloatRange(0, 1),
    default=None,
    help="YOLO operating confidence for precision/recall/F1 (mAP50 uses all scores); default: "
    "the model folder's own (detector.json conf), else 0.25.",
)
@click.option(
    "--fit-conf",
    is_flag=True,
    help="Write the confidence of best F1 on this split (0.05-0.95 in steps of 0.05) into the "
    "model folder's detector.json as its operating point. Fit on a validation split only.",
)
@click.option(
    "--mpp",
    type=click.FloatRange(min=0.001, max=100.0),
    default=None,
    help="Microns per pixel of images whose file records none.",
)
@click.option(
    "--field-um",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Or: physical length of each image's long side in microns (crops that share a "
    "field of view, not a pixel size, such as TXL-PBC).",
)
@click.option(
    "--max-tile-px",
    type=click.IntRange(min=64),
    default=1024,
    show_default=True,
    help="Largest tile side at the detector's scale; larger images are tiled as in wsi-screen run.",
)
@torch_device_option
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Detector option, the value read as JSON (e.g. --option min_area_um2=15); repeatable.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score the first N images.")
def evaluate_detector(
    detector: str,
    data: Path,
    out_dir: Path,
    classes: str | None,
    split: str,
    conf: float | None,
    fit_conf: bool,
    mpp: float | None,
    field_um: float | None,
    max_tile_px: int,
    device: str,
    options: tuple[str, ...],
    limit: int | None,
) -> None:
    """Score DETECTOR (weights, a model folder, a shipped name, or 'foreground') on YOLO DATA.

    Writes metrics.json (precision, recall, F1, mAP50, count errors, centre matching) and
    per_image.csv. A detector, split, class or option that cannot be used exits 2.
    """
    from wsi_screen.cli.detector_folder import model_conf
    from wsi_screen.cli.detector_folder import write_fitted_conf
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.io import atomic_write_text
    from wsi_screen.training.detector_eval import evaluate_on_yolo_dataset

    if mpp is not None and field_um is not None:
        msg = "give --mpp or --field-um, not both"
        raise click.UsageError(msg)
    opts: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            msg = f"--option {item!r}: expected KEY=VALUE"
            raise click.BadParameter(msg)
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    try:
        is_fg = detector.lower() == "foreground"
        if fit_conf and is_fg:
            msg = "--fit-conf needs a YOLO model folder; the foreground detector has no confidence"
            raise click.UsageError(msg)
        op_conf = conf if conf is not None or is_fg else model_conf(detector)
        det = _make_detector(detector, conf=op_conf or 0.0, device=device, options=opts)
        result = evaluate_on_yolo_dataset(
            det,
            data,
            split=split,
            classes=_split_classes(classes),
            mpp=mpp,
            field_um=field_um,
            score_threshold=0.0 if is_fg else float(op_conf or 0.0),
            max_tile_px=max_tile_px,
            limit=limit,
        )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    per_image = result.pop("per_image")
    report = {
        "detector": detector,
        "params": det.params(),
        "operating_conf": None if is_fg else op_conf,
        "data": str(data),
        "split": split,
        "classes": _split_classes(classes),
        "mpp": mpp,
        "field_um": field_um,
        **result,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "per_image.csv", _per_image_csv(per_image))
    log.info(
        "%s on %d images: P %.3f R %.3f F1 %.3f mAP50 %s (centre: P %.3f R %.3f F1 %.3f)",
        detector,
        result["counts"]["n_images"],
        result["precision"],
        result["recall"],
        result["f1"],
        result["map50"],
        result["centre"]["precision"],
        result["centre"]["recall"],
        result["centre"]["f1"],
    )
    for name in ("metrics.json", "per_image.csv"):
        click.echo(f"wrote {out_dir / name}")
    if fit_conf:
        cfg_path = write_fitted_conf(detector, report)
        best = report["best_f1"]
        click.echo(
            f"conf {best['threshold']:.2f} (F1 {best['f1']:.3f}, P {best['precision']:.3f}, "
            f"R {best['recall']:.3f} on {split}) written to {cfg_path}"
        )
