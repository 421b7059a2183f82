"""Annotation converters round-trip; class selection rewrites labels without touching the source."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsi_screen.errors import InputError
from wsi_screen.training.detector_convert import Box
from wsi_screen.training.detector_convert import YoloLabel
from wsi_screen.training.detector_convert import box_to_yolo
from wsi_screen.training.detector_convert import find_splits
from wsi_screen.training.detector_convert import label_path_for
from wsi_screen.training.detector_convert import points_to_yolo
from wsi_screen.training.detector_convert import prepare_yolo_dataset
from wsi_screen.training.detector_convert import read_voc
from wsi_screen.training.detector_convert import read_yolo_labels
from wsi_screen.training.detector_convert import voc_to_yolo
from wsi_screen.training.detector_convert import write_voc
from wsi_screen.training.detector_convert import write_yolo_labels
from wsi_screen.training.detector_convert import yolo_to_box
from wsi_screen.training.detector_convert import yolo_to_points

NAMES = ("WBC", "RBC", "Platelets")


def test_voc_round_trip(tmp_path: Path) -> None:
    boxes = [Box("WBC", 10, 20, 110, 140), Box("RBC", 300, 5, 350, 60), Box("Platelets", 0, 0, 8, 9)]
    xml = tmp_path / "a.xml"
    write_voc(xml, "a.jpg", 640, 480, boxes)
    w, h, back = read_voc(xml)
    assert (w, h) == (640, 480)
    assert back == boxes
    n = voc_to_yolo(xml, tmp_path / "a.txt", NAMES)
    assert n == 3
    labels = read_yolo_labels(tmp_path / "a.txt")
    assert [lab.cls for lab in labels] == [0, 1, 2]
    for lab, box in zip(labels, boxes, strict=True):
        again = yolo_to_box(lab, 640, 480, NAMES)
        assert again.label == box.label
        assert np.allclose(
            [again.x0, again.y0, again.x1, again.y1], [box.x0, box.y0, box.x1, box.y1], atol=1e-3
        )


def test_voc_unknown_class_skipped_or_strict(tmp_path: Path) -> None:
    xml = tmp_path / "b.xml"
    write_voc(xml, "b.jpg", 100, 100, [Box("WBC", 1, 1, 50, 50), Box("Smudge", 60, 60, 90, 90)])
    assert voc_to_yolo(xml, tmp_path / "b.txt", ["WBC"]) == 1
    with pytest.raises(InputError, match="Smudge"):
        voc_to_yolo(xml, tmp_path / "c.txt", ["WBC"], strict=True)
    (tmp_path / "bad.xml").write_text("<annotation><object>", encoding="utf-8")
    with pytest.raises(InputError, match="bad.xml"):
        read_voc(tmp_path / "bad.xml")


def test_points_round_trip_and_size() -> None:
    pts = [(100.0, 120.0), (400.5, 300.25), (620.0, 10.0)]
    labels = points_to_yolo(pts, 640, 480, diameter_um=12.0, mpp=0.1, cls=0)
    inner = labels[:2]  # the third is clipped by the border
    assert np.allclose(yolo_to_points(inner, 640, 480), pts[:2], atol=1e-3)
    for lab in inner:
        assert lab.w * 640 == pytest.approx(120.0, abs=1e-3)  # 12 um / 0.1 um per px
        assert lab.h * 480 == pytest.approx(120.0, abs=1e-3)
    edge = labels[2]
    assert edge.cx - edge.w / 2 >= 0
    assert edge.cx + edge.w / 2 <= 1 + 1e-9
    assert edge.cy - edge.h / 2 >= 0
    with pytest.raises(InputError):
        points_to_yolo(pts, 640, 480, diameter_um=0, mpp=0.1)


def test_label_file_round_trip(tmp_path: Path) -> None:
    labels = [YoloLabel(0, 0.5, 0.25, 0.1, 0.2), YoloLabel(2, 0.123456, 0.9, 0.05, 0.05)]
    write_yolo_labels(tmp_path / "x.txt", labels)
    assert read_yolo_labels(tmp_path / "x.txt") == labels
    write_yolo_labels(tmp_path / "empty.txt", [])
    assert read_yolo_labels(tmp_path / "empty.txt") == []
    assert read_yolo_labels(tmp_path / "missing.txt") == []
    lab = box_to_yolo(Box("WBC", -10, 0, 50, 40), 100, 80, 0)  # clipped at the left border
    assert (lab.cx, lab.w) == (pytest.approx(0.25), pytest.approx(0.5))


def _write_dataset(root: Path, with_yaml: bool) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{split}{i}.jpg"), img)
            write_yolo_labels(
                root / "labels" / split / f"{split}{i}.txt",
                [
                    YoloLabel(0, 0.5, 0.5, 0.3, 0.3),
                    YoloLabel(1, 0.2, 0.2, 0.1, 0.1),
                    YoloLabel(2, 0.8, 0.8, 0.05, 0.05),
                ],
            )
    if with_yaml:
        (root / "data.yaml").write_text(
            "train: ./images/train/\nval: ./images/val/\nnc: 3\nnames: ['WBC', 'RBC','Platelets']",
            encoding="utf-8",
        )


@pytest.mark.parametrize("with_yaml", [True, False])
def test_prepare_dataset_keeps_selected_classes(tmp_path: Path, with_yaml: bool) -> None:
    src = tmp_path / "src"
    _write_dataset(src, with_yaml)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    classes = ["wbc", "Platelets"] if with_yaml else ["0", "2"]
    yaml_path = prepare_yolo_dataset(src, tmp_path / "out", classes=classes)
    import yaml

    data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    assert list(data["names"].values()) == (["WBC", "Platelets"] if with_yaml else ["0", "2"])
    splits, _ = find_splits(yaml_path)
    assert sorted(splits) == ["train", "val"]
    for split, n in (("train", 3), ("val", 2)):
        imgs = sorted((tmp_path / "out" / "images" / split).iterdir())
        assert len(imgs) == n
        for img in imgs:
            labels = read_yolo_labels(label_path_for(img))
            assert [lab.cls for lab in labels] == [0, 1]  # WBC -> 0, Platelets -> 1
            assert labels[1].w == pytest.approx(0.05)
    after = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert after == before  # the source data set is untouched
    with pytest.raises(InputError, match="Monocyte"):
        prepare_yolo_dataset(src, tmp_path / "out2", classes=["Monocyte"])


def test_missing_dataset_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="images/"):
        find_splits(tmp_path)
