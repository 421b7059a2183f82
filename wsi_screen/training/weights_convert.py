"""Convert an ultralytics ``.pt`` checkpoint into pickle-free ``weights.safetensors``, once.

A ``.pt`` file is a pickle, and unpickling runs code the file names. The conversion therefore
runs in a separate Python process (isolated mode ``-I``, a private empty working folder and home,
a minimal environment, ultralytics offline, a time limit) that writes only a safetensors file into
that folder; this process then reads the result the safe way (header checked, network rebuilt,
tensors loaded) before anything is placed in the output folder.

The child unpickles only with ultralytics' restricted loader (``torch.load(weights_only=True)``
with an allow-list of ultralytics and torch model classes), which refuses checkpoints that name
anything else. There is no unrestricted mode: wsi-screen never unpickles arbitrary objects. Even
the restricted load is unpickling; convert only files you trust.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from wsi_screen.detectors.ultralytics_env import ultralytics_session
from wsi_screen.detectors.yolo_weights import SAFE_WEIGHTS_FILE
from wsi_screen.detectors.yolo_weights import build_detection_model
from wsi_screen.detectors.yolo_weights import read_yolo_weights
from wsi_screen.detectors.yolo_weights import save_yolo_weights
from wsi_screen.errors import ModelBundleError
from wsi_screen.io import atomic_write_text
from wsi_screen.io import atomic_write_with

CONFIG_FILE = "detector.json"
_CHILD_EXIT = 3


def _child_env(work: Path) -> dict[str, str]:
    """A minimal environment: no credentials or proxies of the parent's, ultralytics offline."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work),
        "YOLO_CONFIG_DIR": str(work / "ultralytics"),
        "YOLO_OFFLINE": "1",
        "YOLO_VERBOSE": "False",
        "MPLCONFIGDIR": str(work / "matplotlib"),
        "OMP_NUM_THREADS": "1",
        "NO_PROXY": "*",
    }
    for key in ("LANG", "LC_ALL", "SYSTEMROOT"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _child_error(proc: subprocess.CompletedProcess[str], src: Path) -> ModelBundleError:
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    said = next((ln[len("ERROR: ") :] for ln in reversed(lines) if ln.startswith("ERROR: ")), None)
    if said is None:
        said = f"the conversion process failed (exit {proc.returncode}): {lines[-1][:300] if lines else 'no message'}"
    return ModelBundleError(f"{src}: {said}")


def convert_checkpoint(
    src: str | Path,
    out_dir: str | Path,
    *,
    mpp: float | None = None,
    timeout_s: float = 600.0,
) -> Path:
    """Convert ``src`` (an ultralytics ``.pt``) into ``out_dir/weights.safetensors`` plus ``detector.json``.

    Args:
        src: the checkpoint; it is unpickled in a child process (see the module notes).
        out_dir: the model folder to write (created; existing files of the same names replaced).
        mpp: microns per pixel the model was trained at, written into ``detector.json``; None
            keeps the value of a ``detector.json`` beside ``src`` (or leaves it unknown).
        timeout_s: the child's time limit.

    Returns:
        The safetensors file written.

    Raises:
        ModelBundleError: the child refused or failed, or its output is not valid weights.
    """
    src = Path(src).resolve()
    if not src.is_file():
        msg = f"{src}: no such file"
        raise ModelBundleError(msg)
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="wsi_screen_convert_") as tmp:
        work = Path(tmp)
        result = work / SAFE_WEIGHTS_FILE
        cmd = [sys.executable, "-I", "-m", __name__, str(src), str(result)]
        try:
            proc = subprocess.run(  # noqa: S603  # our own interpreter and module
                cmd,
                cwd=work,
                env=_child_env(work),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            msg = f"{src}: conversion did not finish within {timeout_s:g} s"
            raise ModelBundleError(msg) from e
        if proc.returncode != 0 or not result.is_file():
            raise _child_error(proc, src)
        weights = read_yolo_weights(result)  # this process: header checks, no pickle
        with ultralytics_session():
            build_detection_model(weights)
        out.mkdir(parents=True, exist_ok=True)
        target = out / SAFE_WEIGHTS_FILE
        atomic_write_with(target, lambda p: shutil.copyfile(result, p))
    cfg = _detector_json(src, out, [weights.names[i] for i in sorted(weights.names)], mpp)
    atomic_write_text(out / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    return target


def _detector_json(src: Path, out: Path, names: list[str], mpp: float | None) -> dict[str, Any]:
    """``detector.json`` for the converted folder: the source's, else a minimal one."""
    cfg: dict[str, Any] = {}
    beside = src.parent / CONFIG_FILE
    if beside.is_file() and beside.stat().st_size < (1 << 20):
        try:
            loaded = json.loads(beside.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError):
            loaded = None
        cfg = dict(loaded) if isinstance(loaded, dict) else {}
    cfg.setdefault("format_version", 1)
    cfg.setdefault("name", out.resolve().name)
    cfg["class_names"] = names
    if mpp is not None:
        cfg["mpp"] = float(mpp)
    cfg.setdefault("mpp", None)
    cfg["converted_from"] = src.name
    return cfg


def load_checkpoint_model(src: str | Path) -> Any:
    """Load ``src`` with ultralytics' restricted loader; its detection model (EMA when present)."""
    import torch

    with ultralytics_session():
        tasks = importlib.import_module("ultralytics.nn.tasks")
        ckpt, _ = tasks.torch_safe_load(str(src), safe_only=True)
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    if not isinstance(model, torch.nn.Module):
        msg = "not an ultralytics checkpoint (no model in it)"
        raise ModelBundleError(msg)
    if getattr(model, "task", "detect") != "detect":
        msg = f"an ultralytics {getattr(model, 'task', '?')} model, not a detection model"
        raise ModelBundleError(msg)
    return model


def _main(argv: list[str]) -> int:
    """Child entry point: ``python -I -m wsi_screen.training.weights_convert SRC DST``."""
    if len(argv) != 2:
        print("ERROR: usage: weights_convert SRC DST", file=sys.stderr)  # noqa: T201
        return 2
    try:
        model = load_checkpoint_model(argv[0])
        save_yolo_weights(model, argv[1])
    except Exception as e:  # the child reports every failure as one line for the parent
        text = " ".join(str(e).replace("ERROR ❌️", "").split())[:400]
        if "outside the supported" in text or "Weights only load failed" in text:
            text = (
                "the checkpoint names code outside ultralytics' and torch's model classes, refused by the "
                "restricted loader (wsi-screen never unpickles arbitrary objects)"
            )
            print(f"ERROR: {text}", file=sys.stderr)  # noqa: T201
        else:
            print(f"ERROR: {type(e).__name__}: {text}", file=sys.stderr)  # noqa: T201
        return _CHILD_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
