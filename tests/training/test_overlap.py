from __future__ import annotations

import json

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.training.overlap import training_overlap

PROV = {"data": {"train": {"root": "marrow_set"}, "all": {"root": "marrow_set", "per_class": {"BLA": 3, "LYT": 2}}},
        "heldout_test_list": "heldout.txt"}  # fmt: skip
FILES = ["BLA/a.jpg", "BLA/b.jpg", "BLA/c.jpg", "LYT/d.jpg", "LYT/e.jpg"]


def _bundle(tmp_path, *, split=None, listed=True):
    folder = tmp_path / "bundle"
    folder.mkdir()
    if listed:
        (folder / "heldout.txt").write_text("# held out\nBLA/c.jpg\nLYT/e.jpg\n")
    if split is not None:
        (folder / "split.json").write_text(json.dumps(split))
    return ModelBundle("x", ("BLA", "LYT"), 32, (0.5,) * 3, (0.25,) * 3, provenance=PROV, path=folder)


def test_training_data_is_found_by_name_or_by_counts(tmp_path):
    b = _bundle(tmp_path)
    hit = training_overlap(b, tmp_path / "marrow_set", FILES, {"BLA": 3, "LYT": 2})
    assert (hit["n_overlap"], hit["n_evaluated"]) == (3, 5)
    assert "3 of 5 evaluated patches are in the model's training or validation split" in hit["message"]
    assert "--only" in hit["message"] and hit["heldout_list"].endswith("heldout.txt")
    renamed = training_overlap(b, tmp_path / "copy", FILES, {"BLA": 3, "LYT": 2})
    assert renamed["n_overlap"] == 3
    assert training_overlap(b, tmp_path / "other", FILES, {"BLA": 3, "LYT": 9}) is None
    assert (
        training_overlap(b, tmp_path / "marrow_set", ["BLA/c.jpg", "LYT/e.jpg"], {}) is None
    )  # held out only


def test_split_json_wins_and_no_list_means_every_patch(tmp_path):
    b = _bundle(tmp_path, split={"test": ["BLA/a.jpg"]})
    assert training_overlap(b, tmp_path / "marrow_set", FILES, {})["n_overlap"] == 4
    (tmp_path / "b2").mkdir()
    b2 = _bundle(tmp_path / "b2", listed=False)
    hit = training_overlap(b2, tmp_path / "marrow_set", FILES, {})
    assert hit["n_overlap"] == 5 and "lists no held-out share" in hit["message"]
