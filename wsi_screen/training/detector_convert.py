"""Annotation converters to YOLO format, and class selection on YOLO data sets.

YOLO label files hold one line per box: ``class cx cy w h`` with centre and size normalised by the
image width and height. Converters here take Pascal VOC XML boxes or point annotations (a cell
centre plus a typical cell diameter in microns and the image's microns per pixel) and write that
format; :func:`prepare_yolo_dataset` rewrites a data set keeping only the chosen classes.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.io import atomic_write_text

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, slots=True)
class Box:
    """One labelled box in image pixels: (x0, y0, x1, y1), x1/y1 exclusive."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True, slots=True)
class YoloLabel:
    """One YOLO label line: class index, centre and size normalised to [0, 1]."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float

    def line(self) -> str:
        """Format as a label-file line."""
        return f"{self.cls} {self.cx:.6f} {self.cy:.6f} {self.w:.6f} {self.h:.6f}"


def box_to_yolo(box: Box, width: int, height: int, cls: int) -> YoloLabel:
    """Convert a pixel box to a normalised YOLO label, clipped to the image."""
    x0, x1 = max(0.0, box.x0), min(float(width), box.x1)
    y0, y1 = max(0.0, box.y0), min(float(height), box.y1)
    return YoloLabel(
        cls, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
    )


def yolo_to_box(label: YoloLabel, width: int, height: int, names: Sequence[str]) -> Box:
    """Convert a YOLO label back to a pixel box named by ``names[label.cls]``."""
    cx, cy = label.cx * width, label.cy * height
    w, h = label.w * width, label.h * height
    return Box(names[label.cls], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def read_yolo_labels(path: str | Path) -> list[YoloLabel]:
    """Read a YOLO label file (missing file: no boxes)."""
    p = Path(path)
    if not p.is_file():
        return []
    out: list[YoloLabel] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            msg = f"{p}:{n}: expected 'class cx cy w h', got {line!r}"
            raise InputError(msg)
        cls = int(float(parts[0]))
        cx, cy, w, h = (float(v) for v in parts[1:5])
        out.append(YoloLabel(cls, cx, cy, w, h))
    return out


def write_yolo_labels(path: str | Path, labels: Iterable[YoloLabel]) -> None:
    """Write a YOLO label file atomically (an empty file means: image without objects)."""
    lines = [lab.line() for lab in labels]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_voc(path: str | Path) -> tuple[int, int, list[Box]]:
    """Read a Pascal VOC XML file; return image width, height and boxes.

    Raises:
        InputError: the file is not VOC XML or lacks the image size.
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()  # noqa: S314 - local annotation files written by the user
    except (ET.ParseError, OSError) as e:
        msg = f"{p}: not a readable VOC XML file ({e})"
        raise InputError(msg) from e
    size = root.find("size")
    try:
        width = int(float(size.findtext("width")))  # type: ignore[union-attr,arg-type]
        height = int(float(size.findtext("height")))  # type: ignore[union-attr,arg-type]
    except (AttributeError, TypeError, ValueError) as e:
        msg = f"{p}: VOC file lacks <size><width>/<height>"
        raise InputError(msg) from e
    boxes: list[Box] = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if bb is None or not name:
            continue
        # VOC is 1-based with inclusive max corners
        x0 = float(bb.findtext("xmin", "0")) - 1
        y0 = float(bb.findtext("ymin", "0")) - 1
        x1 = float(bb.findtext("xmax", "0"))
        y1 = float(bb.findtext("ymax", "0"))
        boxes.append(Box(name, x0, y0, x1, y1))
    return width, height, boxes


def write_voc(path: str | Path, filename: str, width: int, height: int, boxes: Iterable[Box]) -> None:
    """Write boxes as a Pascal VOC XML file (1-based inclusive corners)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    for b in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = b.label
        bb = ET.SubElement(obj, "bndbox")
        for key, val in (("xmin", b.x0 + 1), ("ymin", b.y0 + 1), ("xmax", b.x1), ("ymax", b.y1)):
            ET.SubElement(bb, key).text = f"{val:.2f}"
    atomic_write_text(path, ET.tostring(root, encoding="unicode"))


def voc_to_yolo(
    xml_path: str | Path, label_path: str | Path, names: Sequence[str], *, strict: bool = False
) -> int:
    """Convert one VOC XML file to a YOLO label file; return the number of boxes written.

    Args:
        xml_path: the VOC annotation.
        label_path: the YOLO label file to write.
        names: class names; their index is the YOLO class id.
        strict: raise on a box whose class is not in ``names`` (else skip it with a debug log).

    Raises:
        InputError: unreadable XML, or an unknown class with ``strict``.
    """
    width, height, boxes = read_voc(xml_path)
    index = {n: i for i, n in enumerate(names)}
    labels: list[YoloLabel] = []
    for b in boxes:
        if b.label not in index:
            if strict:
                msg = f"{xml_path}: class {b.label!r} not in {list(names)}"
                raise InputError(msg)
            log.debug("%s: skipping class %r", xml_path, b.label)
            continue
        labels.append(box_to_yolo(b, width, height, index[b.label]))
    write_yolo_labels(label_path, labels)
    return len(labels)


def points_to_yolo(
    points: Iterable[tuple[float, float]],
    width: int,
    height: int,
    *,
    diameter_um: float,
    mpp: float,
    cls: int = 0,
) -> list[YoloLabel]:
    """Turn cell centres into YOLO boxes of a typical cell size.

    Args:
        points: (x, y) centres in image pixels.
        width: image width in pixels.
        height: image height in pixels.
        diameter_um: typical cell diameter in microns (e.g. 12 for a leukocyte).
        mpp: microns per image pixel.
        cls: class index for all boxes.

    Returns:
        Square boxes of side ``diameter_um / mpp`` pixels, clipped to the image.

    Raises:
        InputError: non-positive diameter or mpp.
    """
    if diameter_um <= 0 or mpp <= 0:
        msg = f"points_to_yolo: diameter_um={diameter_um} and mpp={mpp} must be > 0"
        raise InputError(msg)
    half = diameter_um / mpp / 2
    return [
        box_to_yolo(Box(str(cls), x - half, y - half, x + half, y + half), width, height, cls)
        for x, y in points
    ]


def yolo_to_points(labels: Iterable[YoloLabel], width: int, height: int) -> list[tuple[float, float]]:
    """Return the box centres of YOLO labels in image pixels."""
    return [(lab.cx * width, lab.cy * height) for lab in labels]


def _read_names(data_yaml: Path) -> tuple[dict[str, str], list[str]]:
    import yaml  # PyYAML comes with ultralytics and matplotlib's stack

    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        msg = f"{data_yaml}: not a readable data yaml ({e})"
        raise InputError(msg) from e
    names = data.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names:
        msg = f"{data_yaml}: no 'names' list of classes"
        raise InputError(msg)
    base = Path(data.get("path") or data_yaml.parent)
    if not base.is_absolute():
        base = (data_yaml.parent / base).resolve()
    splits = {k: str((base / str(data[k])).resolve()) for k in ("train", "val") if data.get(k)}
    return splits, [str(n).strip() for n in names]


def find_splits(data: str | Path) -> tuple[dict[str, Path], list[str] | None]:
    """Locate image folders of a YOLO data set: ``data.yaml`` or ``images/`` + ``labels/``.

    Returns:
        Split name -> image folder (``train`` and ``val`` when present; a flat ``images/`` folder
        is returned as ``val``), and the class names from the yaml (None when there is no yaml).

    Raises:
        InputError: no yaml and no ``images/`` folder.
    """
    root = Path(data)
    yaml_file = (
        root
        if root.is_file()
        else next((root / n for n in ("data.yaml", "dataset.yaml") if (root / n).is_file()), None)
    )
    if yaml_file is not None:
        splits, names = _read_names(yaml_file)
        found = {k: Path(v) for k, v in splits.items() if Path(v).is_dir()}
        if found:
            return found, names
        root = yaml_file.parent
    images = root / "images"
    if not images.is_dir():
        msg = f"{data}: expected data.yaml or an images/ folder with labels/ beside it"
        raise InputError(msg)
    subs = {k: images / k for k in ("train", "val") if (images / k).is_dir()}
    names_out = _read_names(yaml_file)[1] if yaml_file is not None else None
    return (subs or {"val": images}), names_out


def label_path_for(image: Path) -> Path:
    """Return the YOLO label path of an image (last ``images`` folder replaced by ``labels``)."""
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def list_images(folder: Path) -> list[Path]:
    """Sorted image files directly in ``folder``."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def select_classes(names: Sequence[str], classes: Sequence[str] | None) -> list[int]:
    """Map requested class names (case-insensitive) or indices to indices in ``names``.

    Raises:
        InputError: a requested class is unknown.
    """
    if not classes:
        return list(range(len(names)))
    lower = {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for c in classes:
        key = c.strip().lower()
        if key in lower:
            out.append(lower[key])
        elif key.isdigit() and int(key) < len(names):
            out.append(int(key))
        else:
            msg = f"class {c!r} not in the data set's classes {list(names)}"
            raise InputError(msg)
    return out


def prepare_yolo_dataset(
    data: str | Path, out_dir: str | Path, *, classes: Sequence[str] | None = None
) -> Path:
    """Write a YOLO data set that keeps only ``classes`` (renumbered 0..k-1); return its yaml.

    Images are symlinked (copied where links fail), never modified; label files are rewritten. The
    source data set is not touched.

    Args:
        data: a ``data.yaml`` or a folder with ``images/`` and ``labels/``.
        out_dir: where to write ``images/``, ``labels/`` and ``data.yaml``.
        classes: class names (or indices) to keep; None keeps all.

    Raises:
        InputError: no images, or unknown classes.
    """
    splits, names = find_splits(data)
    if names is None:
        max_cls = -1
        for folder in splits.values():
            for img in list_images(folder):
                for lab in read_yolo_labels(label_path_for(img)):
                    max_cls = max(max_cls, lab.cls)
        names = [str(i) for i in range(max_cls + 1)] or ["cell"]
    keep = select_classes(names, classes)
    remap = {old: new for new, old in enumerate(keep)}
    out = Path(out_dir).resolve()
    n_images = 0
    for split, folder in splits.items():
        img_out = out / "images" / split
        img_out.mkdir(parents=True, exist_ok=True)
        for img in list_images(folder):
            link = img_out / img.name
            if not link.exists():
                try:
                    link.symlink_to(img.resolve())
                except OSError:
                    import shutil

                    shutil.copyfile(img, link)
            labels = [
                YoloLabel(remap[lab.cls], lab.cx, lab.cy, lab.w, lab.h)
                for lab in read_yolo_labels(label_path_for(img))
                if lab.cls in remap
            ]
            write_yolo_labels(out / "labels" / split / f"{img.stem}.txt", labels)
            n_images += 1
    if n_images == 0:
        msg = f"{data}: no images found"
        raise InputError(msg)
    train = "images/train" if "train" in splits else f"images/{next(iter(splits))}"
    val = "images/val" if "val" in splits else train
    kept = [names[i] for i in keep]
    yaml_text = f"path: {out}\ntrain: {train}\nval: {val}\nnames:\n" + "".join(
        f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(kept)
    )
    yaml_path = out / "data.yaml"
    atomic_write_text(yaml_path, yaml_text)
    log.info("prepared %d images, classes %s, in %s", n_images, kept, out)
    return yaml_path
