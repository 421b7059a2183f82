"""The out-of-domain reference: colour statistics, judgement, and storage without pickle."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from wsi_screen.classifiers.domain import COLOUR_STATS
from wsi_screen.classifiers.domain import DomainReference
from wsi_screen.classifiers.domain import DomainTally
from wsi_screen.classifiers.domain import colour_stats
from wsi_screen.errors import ModelBundleError
from wsi_screen.training.domain_fit import fit_reference


def reference(seed: int = 0, f: int = 24) -> DomainReference:
    rng = np.random.default_rng(seed)
    y = np.arange(200) % 4
    feats = rng.normal(size=(200, f)) + 3.0 * np.eye(f)[y]  # four classes apart in feature space
    colour = rng.normal([0.2, 0.4, 0.1, 0.1, 0.2, 0.05], 0.02, size=(200, 6))
    ref = fit_reference(feats, y, colour, components=8)
    return replace(
        ref, colour_threshold=3.0, feature_threshold=5.0, info={**ref.info, "group_size": [30, 40]}
    )


def test_colour_stats_are_optical_density_per_channel() -> None:
    p = np.zeros((2, 12, 12, 3), np.uint8)
    p[0] = (255, 127, 0)
    p[1, :, :6] = 255
    s = colour_stats(p)
    assert s.shape == (2, len(COLOUR_STATS))
    np.testing.assert_allclose(s[0, :3], [0.0, math.log(2), math.log(256)], rtol=1e-5)
    np.testing.assert_allclose(s[0, 3:], 0.0, atol=1e-6)
    # half white, half black: mean and std of {0, ln 256} in every channel
    np.testing.assert_allclose(s[1], [math.log(256) / 2] * 6, rtol=1e-4)
    swapped = colour_stats(np.ascontiguousarray(p[..., ::-1]))
    np.testing.assert_allclose(swapped[0, :3], s[0, 2::-1], rtol=1e-5)
    with pytest.raises(ValueError, match="N x H x W x 3"):
        colour_stats(np.zeros((4, 4, 3), np.uint8))


def test_feature_distance_is_small_near_a_class_and_large_away() -> None:
    ref = reference()
    rng = np.random.default_rng(5)
    near = rng.normal(size=(50, 24)) + 3.0 * np.eye(24)[np.arange(50) % 4]
    far = near + 8.0
    d_near, d_far = ref.feature_distances(near), ref.feature_distances(far)
    assert d_near.shape == (50,)
    assert np.median(d_far) > 3 * np.median(d_near)
    with pytest.raises(ValueError, match="expects 24 features"):
        ref.feature_distances(np.zeros((3, 10)))


def test_judgement_names_the_signal_that_fired() -> None:
    ref = reference()
    stats = np.tile(ref.colour_mean, (40, 1))
    ok = ref.judge(stats, np.full(40, 1.0))
    assert ok["status"] == "in_domain" and ok["reasons"] == [] and ok["threshold"] == 1.0
    assert ok["score"] == pytest.approx(1.0 / 5.0)
    assert ok["n_cells"] == 40 and set(ok["signals"]) == {"colour", "features"}
    colour_off = ref.judge(stats + 0.5, np.full(40, 1.0))
    assert colour_off["status"] == "out_of_domain"
    assert len(colour_off["reasons"]) == 1 and "colour" in colour_off["reasons"][0]
    feat_off = ref.judge(stats, np.full(40, 6.0))
    assert feat_off["status"] == "out_of_domain" and "feature" in feat_off["reasons"][0]
    assert feat_off["score"] == pytest.approx(6.0 / 5.0)
    few = ref.judge(stats[:3], np.full(3, 1.0))
    assert few["status"] == "in_domain" and "only 3 cell(s)" in few["reasons"][0]
    empty = ref.judge(np.zeros((0, 6)), np.zeros(0))
    assert empty["status"] == "not_assessed" and empty["score"] is None
    json.dumps([ok, colour_off, feat_off, few, empty])  # a report can carry them as they are


def test_tally_over_batches_equals_one_judgement() -> None:
    ref = reference()
    rng = np.random.default_rng(1)
    stats = (ref.colour_mean + rng.normal(0, 0.02, size=(70, 6))).astype(np.float32)  # as classified
    dist = rng.uniform(1, 4, 70)
    tally = DomainTally()
    for s in range(0, 70, 32):
        tally.add(stats[s : s + 32], dist[s : s + 32])
    assert tally.judge(ref) == ref.judge(stats, dist)
    assert DomainTally().judge(ref)["status"] == "not_assessed"
    with pytest.raises(ValueError, match="colour rows"):
        tally.add(stats[:2], dist[:3])


def test_reference_roundtrip_through_safetensors(tmp_path: Path) -> None:
    ref = reference()
    ref.save_tensors(tmp_path / "domain.safetensors")
    block = json.loads(json.dumps(ref.to_json("domain.safetensors")))  # through JSON, as in model.json
    back = DomainReference.load(tmp_path, block)
    for name in (
        "colour_mean",
        "colour_precision",
        "pca_mean",
        "pca_components",
        "class_means",
        "feature_precision",
    ):
        np.testing.assert_array_equal(getattr(back, name), getattr(ref, name))
    assert back.colour_threshold == 3.0 and back.feature_threshold == 5.0
    assert back.info == ref.info
    x = np.random.default_rng(2).normal(size=(10, 24))
    np.testing.assert_array_equal(back.feature_distances(x), ref.feature_distances(x))
    head = (tmp_path / "domain.safetensors").read_bytes()[:8]
    assert int.from_bytes(head, "little") < 4096  # a safetensors JSON header, not a pickle
    assert (tmp_path / "domain.safetensors").stat().st_size < 20_000


def test_bad_reference_files_are_refused_by_name(tmp_path: Path) -> None:
    ref = reference()
    block = ref.to_json("domain.safetensors")
    with pytest.raises(ModelBundleError, match="not found"):
        DomainReference.load(tmp_path, block)
    (tmp_path / "domain.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ModelBundleError, match="not a readable safetensors") as e:
        DomainReference.load(tmp_path, block)
    assert "domain.safetensors" in str(e.value)
    with pytest.raises(ModelBundleError, match="shapes"):
        replace(ref, class_means=np.zeros((4, 3)))
    ref.save_tensors(tmp_path / "domain.safetensors")
    with pytest.raises(ModelBundleError, match="colour_threshold"):
        DomainReference.load(tmp_path, {k: v for k, v in block.items() if k != "colour_threshold"})
    with pytest.raises(ModelBundleError, match="> 0"):
        DomainReference.load(tmp_path, {**block, "feature_threshold": -1})
    from safetensors.numpy import save_file

    save_file({"colour_mean": np.zeros(6)}, str(tmp_path / "part.safetensors"))
    with pytest.raises(ModelBundleError, match="missing tensor"):
        DomainReference.load(tmp_path, {**block, "file": "part.safetensors"})
    with pytest.raises(ModelBundleError, match="must be an object"):
        DomainReference.load(tmp_path, ["domain.safetensors"])
