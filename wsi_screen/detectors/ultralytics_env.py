"""The one module that imports ultralytics (AGPL-3.0), lazily, offline and quietly.

:func:`ultralytics_session` imports ultralytics inside a context that keeps it offline and quiet
and undoes the global state it changes on import and during predict/train: environment variables
(``OMP_NUM_THREADS``, ...), OpenCV's and torch's thread counts (``select_device('cpu')`` drops torch
to one thread), print options and torch's deterministic-algorithms switch. The YOLO detector
(:mod:`wsi_screen.detectors.yolo`) and its training (:mod:`wsi_screen.training.yolo_train`) reach
ultralytics only through this module, and hand its ``YOLO`` class only networks already built
(:func:`as_yolo`), never a model name or path that ultralytics would resolve itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from wsi_screen.errors import MissingDependencyError
from wsi_screen.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

__all__ = ["as_yolo", "ultralytics_session"]


_PRIVATE_DIR: list[Path] = []  # this process's private folder, made once


def _config_dir() -> Path:
    """Return the ultralytics config dir, with the font it would otherwise download.

    A ``YOLO_CONFIG_DIR`` set by the caller (tests, a deployment) is kept; otherwise a private
    folder (``tempfile.mkdtemp``, mode 0700, one per process) is used, so ultralytics never
    writes into the user's home and nobody can plant files or links in it beforehand.
    """
    preset = os.environ.get("YOLO_CONFIG_DIR")
    if preset:
        root = Path(preset)
    else:
        if not _PRIVATE_DIR:
            _PRIVATE_DIR.append(Path(tempfile.mkdtemp(prefix="wsi_screen_ultralytics_")))
            atexit.register(shutil.rmtree, _PRIVATE_DIR[0], ignore_errors=True)
        root = _PRIVATE_DIR[0]
    font = root / "Ultralytics" / "Arial.ttf"
    if not font.exists() and not font.is_symlink():
        font.parent.mkdir(parents=True, exist_ok=True)
        import matplotlib  # only needed to find a bundled font

        dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if dejavu.exists():
            # ultralytics downloads Arial.ttf for plots when it is missing; give it a local font
            # (written atomically: a link planted at the name is replaced, never followed)
            atomic_write_bytes(font, dejavu.read_bytes())
    return root


_OFF_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def _quiet_settings(config_dir: Path) -> None:
    """Turn off telemetry and logger integrations in ultralytics' (private) settings file."""
    from ultralytics.utils import SETTINGS

    wanted: dict[str, Any] = {"sync": False, **dict.fromkeys(_OFF_INTEGRATIONS, False)}
    wanted["runs_dir"] = str(config_dir / "runs")
    wanted["weights_dir"] = str(config_dir / "weights")
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)  # type: ignore[no-untyped-call]


_YOLO_ENV = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}


@contextmanager
def _restored_globals() -> Iterator[None]:
    """Undo what ultralytics changes process-wide on import, predict and train.

    Environment variables (``OMP_NUM_THREADS``, ``NUMEXPR_MAX_THREADS``, ``PYTHONHASHSEED``, ...),
    torch and OpenCV thread counts (``select_device('cpu')`` drops torch to one thread), numpy and
    torch print options, torch's deterministic-algorithms switch (set by training), and the
    monkey-patches ultralytics applies on import to ``torch.save`` and ``PIL.Image.open`` (the latter
    tries to install a HEIF plug-in when a file is not an image, which would turn our reader's
    clear "not an image" error into an install attempt).
    """
    import cv2
    import torch
    from PIL import Image

    env = dict(os.environ)
    torch_save = torch.save
    pil_open = Image.open
    torch_threads = torch.get_num_threads()
    cv2_threads = cv2.getNumThreads()
    np_print = np.get_printoptions()
    torch_print = dict(vars(torch._tensor_str.PRINT_OPTS))  # no public getter
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        for key in set(os.environ) - set(env):
            if key not in _YOLO_ENV and key != "YOLO_CONFIG_DIR":
                del os.environ[key]
        for key, value in env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)
        np.set_printoptions(**np_print)
        for key, value in torch_print.items():
            setattr(torch._tensor_str.PRINT_OPTS, key, value)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.save = torch_save
        Image.open = pil_open


@contextmanager
def ultralytics_session() -> Iterator[Any]:
    """Import ultralytics offline and quietly; yield its ``YOLO`` class; restore global state.

    ``YOLO_OFFLINE``, ``YOLO_VERBOSE`` and ``YOLO_CONFIG_DIR`` are set before the import and left
    set, because ultralytics reads them again later; everything else it changes is undone.

    Raises:
        MissingDependencyError: ultralytics is not installed.

    Example:
        >>> with ultralytics_session() as YOLO:  # doctest: +SKIP
        ...     model = as_yolo(YOLO, build_detection_model(read_yolo_weights(path)))
    """
    os.environ.update(_YOLO_ENV)
    os.environ["YOLO_CONFIG_DIR"] = str(_config_dir())
    with _restored_globals():
        try:
            from ultralytics import YOLO  # type: ignore[attr-defined]  # AGPL-3.0; imported here only
        except ImportError as e:
            msg = "the YOLO detector needs ultralytics: pip install ultralytics"
            raise MissingDependencyError(msg) from e
        _quiet_settings(Path(os.environ["YOLO_CONFIG_DIR"]))
        yield YOLO


_MODEL_LABEL = "wsi-screen-detector.yaml"
"""The model name ultralytics' ``YOLO`` is given: fixed, so nothing a file says reaches it (a
``-world``/``yoloe`` name would switch the model class, a ``://`` one would mean a Triton server)."""


def as_yolo(yolo_cls: Any, net: torch.nn.Module) -> Any:
    """Wrap a built ``DetectionModel`` in ultralytics' ``YOLO`` interface (predict, train, val).

    ``YOLO(path)`` would load ``path`` itself (by unpickling for ``.pt``, from a YAML file that may
    run code for ``.yaml``); this subclass takes the network already built instead, with the
    overrides a loaded checkpoint would have. ``ckpt`` is set, so training starts from this
    network's own architecture dict (and from its tensors when ``pretrained``) rather than
    resolving a model name again.
    """

    class _Built(yolo_cls):  # type: ignore[misc]
        def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
            del task, verbose
            self.cfg = None
            self.task = "detect"
            self.model = net
            self.overrides = {"task": "detect", "model": cfg}
            self.model_name = cfg
            self.ckpt = {"built_by": "wsi-screen"}

    return _Built(_MODEL_LABEL, task="detect")
