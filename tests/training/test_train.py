from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsi_screen.classifiers.bundle import ModelBundle
from wsi_screen.errors import ConfigError
from wsi_screen.training.augment import AugmentConfig
from wsi_screen.training.datasets import scan_folder
from wsi_screen.training.schemes import load_scheme
from wsi_screen.training.train import TrainConfig
from wsi_screen.training.train import train_model

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COLOURS = {"BLA": (120, 60, 170), "EOS": (220, 120, 60), "LYT": (60, 150, 90)}


def make_class_folders(root: Path, n: int = 30, size: int = 64, seed: int = 0) -> Path:
    """Write n noisy images per class: a coloured disc (colour = class) on a pale background."""
    rng = np.random.default_rng(seed)
    for code, colour in COLOURS.items():
        sub = root / code / "batch1"  # nested subfolder: the Matek layout allows it
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((size, size, 3), 225, np.uint8)
            c = (size // 2 + int(rng.integers(-4, 5)), size // 2 + int(rng.integers(-4, 5)))
            cv2.circle(img, c, int(rng.integers(size // 6, size // 3)), colour, -1)
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(sub / f"{code}_{i:03d}.png"), img[:, :, ::-1])
    return root


def tiny_cfg(**kw: object) -> TrainConfig:
    base = TrainConfig(
        arch="test_resnet",
        image_size=32,
        epochs=3,
        batch_size=16,
        lr=5e-3,
        warmup_epochs=0,
        patch_size_px=64,
        device="cpu",
        threads=1,
        val_fraction=0.3,
        augment=AugmentConfig(rotation_deg=30, shift=0.05),
    )
    return replace(base, **kw)


def test_tiny_training_learns(tmp_path: Path) -> None:
    data = make_class_folders(tmp_path / "data")
    bundle = train_model(data, tmp_path / "m", tiny_cfg(test_fraction=0.2))
    assert bundle.class_names == ("BLA", "EOS", "LYT")
    assert bundle.input_size == 32
    assert bundle.metrics["validation"]["accuracy"] > 0.6  # chance is 1/3
    prov = bundle.provenance
    assert prov["recipe"]["arch"] == "test_resnet"
    assert prov["data"]["all"]["per_class"] == {"BLA": 30, "EOS": 30, "LYT": 30}
    split = json.loads((tmp_path / "m" / "split.json").read_text())
    assert len(split["test"]) == 18
    train_files = set(split["validation"][0]) | set(split["test"])
    assert len(train_files) == len(split["validation"][0]) + 18  # test and validation disjoint
    loaded = ModelBundle.load(tmp_path / "m")
    assert loaded.create_model() is not None
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_final_fit_without_validation_keeps_the_last_epoch(tmp_path: Path) -> None:
    from wsi_screen.training.evaluate import evaluate_bundle

    data = make_class_folders(tmp_path / "data")
    bundle = train_model(data, tmp_path / "m", tiny_cfg(test_fraction=0.2, val_fraction=0.0))
    assert bundle.metrics["validation"] is None
    assert bundle.metrics["selected_epoch"] == 3
    split = json.loads((tmp_path / "m" / "split.json").read_text())
    assert split["validation"] == [[]]
    assert bundle.provenance["data"]["train"]["n_images"] == 90 - 18  # everything but the test share
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert "macro_recall" not in hist[-1]
    m = evaluate_bundle(bundle, data, tmp_path / "ev", only=tmp_path / "m" / "split.json", device="cpu")
    assert m["n_evaluated"] == 18
    assert m["accuracy"] > 0.6  # learned on the held-out share (chance 1/3)
    with pytest.raises(ConfigError, match="val_fraction > 0 with folds > 1"):
        tiny_cfg(val_fraction=0.0, folds=3)
    from wsi_screen.cli import main

    args = ["train", str(data), "-o", str(tmp_path / "cli"), "--arch", "test_resnet", "--image-size", "32"]
    res = CliRunner().invoke(main, [*args, "--epochs", "1", "--val-fraction", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "no validation split: epoch 1 kept" in res.output


def test_resume_after_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_class_folders(tmp_path / "data", n=12)
    cfg = tiny_cfg(epochs=3)
    ref = train_model(data, tmp_path / "ref", cfg)
    ref_hist = json.loads((tmp_path / "ref" / "history.json").read_text())

    import wsi_screen.training.train as tr

    real = tr.quick_metrics
    calls = {"n": 0}

    def crash_in_epoch_2(*a: object, **k: object) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(tr, "quick_metrics", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_model(data, tmp_path / "run", cfg)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert not (tmp_path / "run" / "model.json").exists()
    monkeypatch.setattr(tr, "quick_metrics", real)
    stale = tmp_path / "run" / ".checkpoint.pt.deadbeef.tmp"  # as a kill during a checkpoint write leaves
    stale.write_bytes(b"partial")
    with pytest.raises(
        ConfigError, match=r"checkpoint\.pt: cannot resume with another recipe \(image_size 32 -> 48"
    ):
        train_model(data, tmp_path / "run", replace(cfg, image_size=48), resume=True)
    resumed = train_model(data, tmp_path / "run", replace(cfg, threads=1), resume=True)  # runtime-only change
    assert not stale.exists()
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "model.json", "history.json"):  # permissions as open() gives
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~mask
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    np.testing.assert_allclose([h["loss"] for h in hist], [h["loss"] for h in ref_hist], rtol=1e-3)
    assert resumed.metrics["selected_epoch"] == ref.metrics["selected_epoch"]


def test_kfold_records_mean_and_sd(tmp_path: Path) -> None:
    data = make_class_folders(tmp_path / "data", n=9)
    bundle = train_model(data, tmp_path / "cv", tiny_cfg(epochs=1, folds=3))
    cv = bundle.metrics["cross_validation"]
    assert set(cv) == {"accuracy", "macro_recall", "macro_f1"}
    assert 0 <= cv["accuracy"]["mean"] <= 1
    assert cv["accuracy"]["sd"] >= 0
    assert all((tmp_path / "cv" / f"fold{k}" / "model.json").is_file() for k in (1, 2, 3))


def test_scheme_maps_and_drops(tmp_path: Path) -> None:
    data = make_class_folders(tmp_path / "data", n=6)
    scheme_file = tmp_path / "s.toml"
    scheme_file.write_text('drop = ["EOS"]\n[classes]\nMYE = ["BLA"]\nLYM = ["LYT", "HAC"]\n')
    ps = scan_folder(data, load_scheme(scheme_file))
    assert ps.class_names == ("MYE", "LYM")
    assert ps.counts() == {"MYE": 6, "LYM": 6}
    assert ps.dropped == {"EOS": 6}
    bundle = train_model(data, tmp_path / "m", tiny_cfg(epochs=1), scheme=load_scheme(scheme_file))
    assert bundle.class_names == ("MYE", "LYM")


def test_init_from_checkpoint_and_errors(tmp_path: Path) -> None:
    data = make_class_folders(tmp_path / "data", n=6)
    first = train_model(data, tmp_path / "a", tiny_cfg(epochs=1))
    b = train_model(data, tmp_path / "b", tiny_cfg(epochs=1, init=first.weights_path))
    assert b.provenance["init"]["loaded"] > 0
    with pytest.raises(ConfigError, match="not a timm architecture"):
        train_model(data, tmp_path / "c", tiny_cfg(arch="no_such_net"))
    with pytest.raises(ConfigError, match="epochs"):
        tiny_cfg(epochs=0)


def test_cli_train(tmp_path: Path) -> None:
    from wsi_screen.cli import main

    data = make_class_folders(tmp_path / "data", n=6, size=40)
    res = CliRunner().invoke(
        main,
        [
            "train",
            str(data),
            "-o",
            str(tmp_path / "m"),
            "--arch",
            "test_resnet",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--batch-size",
            "8",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "validation macro recall" in res.output
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_real_subset_learns(tmp_path: Path) -> None:
    root = SHARED / "matek_bm"
    if not root.is_dir():
        pytest.skip("../shared/data not found: real-data test skipped")
    sub = tmp_path / "real"
    for code in ("EOS", "NGS"):
        (sub / code).mkdir(parents=True)
        for p in sorted((root / code).glob("*.jpg"))[:60]:
            (sub / code / p.name).symlink_to(p)
    rotations_only = AugmentConfig(
        rotation_deg=180, shift=0, shear=0, zoom=0, brightness=0, contrast=0, stain_sigma=0
    )
    cfg = tiny_cfg(
        epochs=10,
        image_size=48,
        patch_size_px=250,
        batch_size=8,
        lr=3e-3,
        val_fraction=0.4,
        augment=rotations_only,
    )
    bundle = train_model(sub, tmp_path / "m", cfg)
    # eosinophils vs segmented neutrophils, 48 validation images: chance is 1/2
    assert bundle.metrics["validation"]["accuracy"] >= 0.7
