"""Cross-check a YOLO model folder with ultralytics' own validator (letterboxed images, mAP50-95).

``wsi-screen evaluate-detector`` is the figure of record (it runs the detector through the
pipeline's tiling); this prints what ``YOLO.val`` reports on the same split for comparison:

    .venv/bin/python benchmarks/detector_ultralytics_val.py wsi_screen/models/yolo-wbc \
        ../shared/data/txl_pbc --classes WBC
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import click

from wsi_screen.detectors.ultralytics_env import ultralytics_session
from wsi_screen.detectors.yolo import resolve_model_dir
from wsi_screen.training.detector_convert import prepare_yolo_dataset


@click.command()
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@click.option("--classes", default="WBC", show_default=True)
@click.option("--imgsz", type=int, default=None, help="Default: the model's training size.")
def main(model: str, data: Path, classes: str, imgsz: int | None) -> None:
    """Print ultralytics' validation metrics of MODEL on the val split of DATA."""
    weights, cfg = resolve_model_dir(model)
    size = imgsz or int(cfg.get("imgsz", 640))
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = prepare_yolo_dataset(data, tmp, classes=classes.split(","))
        with ultralytics_session() as yolo_cls:
            m = yolo_cls(str(weights), task="detect")
            res = m.val(
                data=str(yaml_path),
                imgsz=size,
                batch=16,
                conf=0.001,
                iou=0.7,
                device="cpu",
                workers=0,
                plots=False,
                verbose=False,
                project=str(Path(tmp) / "val"),
                name="run",
            )
    out = {
        "imgsz": size,
        "precision": float(res.box.mp),
        "recall": float(res.box.mr),
        "map50": float(res.box.map50),
        "map50_95": float(res.box.map),
    }
    click.echo(json.dumps(out, indent=2))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
