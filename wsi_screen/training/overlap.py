"""Whether an evaluation looks at patches the model was trained on (``wsi-screen evaluate`` warns).

A bundle records what it was trained on: the data set's folder name and per-class counts
(``provenance.data``), and its held-out test share, as ``split.json`` beside the bundle (``test``)
or a list file (``provenance.heldout_test_list``). An evaluated folder is taken to be the training
data set when its name is the recorded one, or when its per-class counts over the model's classes
are the recorded totals (a renamed copy); every evaluated patch of it outside the held-out share
was then in the training or validation split, and figures on it are not held-out figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.errors import ModelBundleError
from wsi_screen.textfiles import MAX_FILE_LIST_BYTES
from wsi_screen.textfiles import read_file_list
from wsi_screen.textfiles import read_json_object


def heldout_files(bundle: ModelBundle) -> tuple[set[str] | None, str | None]:
    """The bundle's held-out test share (paths relative to its data root) and the file listing it."""
    folder = bundle.path
    if folder is None:
        return None, None
    split = folder / "split.json"
    if split.is_file():
        try:  # read bounded (size, nesting); an unreadable split.json is as if absent
            test = read_json_object(split, error=ModelBundleError, max_bytes=MAX_FILE_LIST_BYTES).get("test")
        except ModelBundleError:
            test = None
        if isinstance(test, list):
            return {str(p) for p in test}, str(split)
    listed = bundle.provenance.get("heldout_test_list")
    if listed and (folder / str(listed)).is_file():
        path = folder / str(listed)
        return set(read_file_list(path, error=ModelBundleError)), str(path)
    return None, None


def is_training_data(bundle: ModelBundle, root: Path, counts: dict[str, int]) -> bool:
    """Whether ``root`` (with these per-class image counts) is the data set the bundle was trained on."""
    data = bundle.provenance.get("data") or {}
    names = {str((data.get(part) or {}).get("root") or "") for part in ("train", "all")} - {""}
    sources = ((data.get("split") or {}).get("manifest") or {}).get("sources") or []
    names |= {Path(str(src.get("root"))).name for src in sources if isinstance(src, dict)}
    if Path(root).resolve().name in names:
        return True
    recorded = (data.get("all") or {}).get("per_class")
    if not recorded:
        return False
    ours = {c: int(counts.get(c, 0)) for c in bundle.class_names}
    return ours == {c: int(recorded.get(c, 0)) for c in bundle.class_names} and sum(ours.values()) > 0


def training_overlap(
    bundle: ModelBundle, root: Path, evaluated: Sequence[str], counts: dict[str, int]
) -> dict[str, Any] | None:
    """How many evaluated patches were in the model's training or validation split, if any.

    Args:
        bundle: the evaluated model.
        root: the evaluated folder.
        evaluated: the evaluated patches, relative to ``root`` (``/`` separators).
        counts: images per class in ``root`` (before any ``--only`` selection).

    Returns:
        None when ``root`` is not the training data set, else a dict with ``n_overlap``,
        ``n_evaluated``, ``training_root``, ``heldout_list`` and a ``message`` to show.
    """
    if not is_training_data(bundle, root, counts):
        return None
    held, listed = heldout_files(bundle)
    train_root = ((bundle.provenance.get("data") or {}).get("train") or {}).get("root") or Path(root).name
    n = len(evaluated)
    if held is None:
        return {
            "n_overlap": n,
            "n_evaluated": n,
            "training_root": train_root,
            "heldout_list": None,
            "message": (
                f"{root} is the data set the model was trained on ({train_root}) and the bundle lists no "
                "held-out share: these figures may include training patches and are not held-out figures"
            ),
        }
    overlap = sum(1 for p in evaluated if p not in held)
    if not overlap:
        return None
    return {
        "n_overlap": overlap,
        "n_evaluated": n,
        "training_root": train_root,
        "heldout_list": listed,
        "message": (
            f"{overlap} of {n} evaluated patches are in the model's training or validation split "
            f"({train_root}): these figures are not held-out figures; for those, evaluate with --only {listed}"
        ),
    }
