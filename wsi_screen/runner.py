"""Build a screener from options and screen inputs into an output folder (shared by run and batch)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import WsiScreenError
from wsi_screen.item_reports import InputOutcome
from wsi_screen.item_reports import discard_partial_reports
from wsi_screen.item_reports import write_item_reports
from wsi_screen.overlap import write_behind
from wsi_screen.pipeline import Screener
from wsi_screen.pipeline import unique_stems
from wsi_screen.sources import is_case_folder

log = logging.getLogger(__name__)


__all__ = ["InputOutcome", "build_screener", "discard_partial_reports", "resolve_config", "screen_to_folder",
           "write_item_reports"]  # fmt: skip


def resolve_config(
    *,
    config_path: Path | None = None,
    detector: str | None = None,
    detector_weights: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    config: ScreenConfig | None = None,
    input_timeout: float | None = None,
    workers: int | None = None,
    backend: str | None = None,
) -> ScreenConfig:
    """Stack config defaults, the TOML file and CLI overrides, without loading any model.

    ``batch`` uses this to key its ledger before (or without) building a screener.

    Raises:
        WsiScreenError: unreadable or invalid config, or inconsistent detector options.
    """
    cfg = config or (ScreenConfig.from_file(config_path) if config_path else ScreenConfig())
    if device is not None:
        cfg = cfg.replace("classify", device=device)
    if batch_size is not None:
        cfg = cfg.replace("classify", batch_size=batch_size)
    if input_timeout is not None:
        cfg = cfg.replace("limits", input_timeout_s=float(input_timeout))
    if workers is not None:
        cfg = cfg.replace("pipeline", workers=workers)
    if backend is not None:
        cfg = cfg.replace("classify", backend=backend)
    if detector is None and detector_weights is not None:
        detector = "yolo"  # weights name the YOLO detector: --detector yolo is implied
    if detector is not None and detector != cfg.detector.name:
        cfg = cfg.replace("detector", name=detector, options={})
    if detector_weights is not None and cfg.detector.name != "yolo":
        msg = f"--detector-weights applies to --detector yolo only, not {cfg.detector.name}"
        raise WsiScreenError(msg)
    return cfg


def build_screener(
    *,
    config_path: Path | None = None,
    model: str = "default",
    detector: str | None = None,
    detector_weights: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    mpp: float | None = None,
    config: ScreenConfig | None = None,
    input_timeout: float | None = None,
    identifiers: dict[str, Any] | None = None,
    workers: int | None = None,
    backend: str | None = None,
    reader: str | None = None,
) -> tuple[Screener, dict[str, Any]]:
    """Resolve config + CLI overrides, load the classifier and detector.

    ``identifiers`` (``sample_id``, ``patient_id``, ``manifest``: a CSV path) say where reports
    take sample and patient identifiers from; inputs' ``.ids.json`` sidecars are always read.
    ``reader`` (``--reader``) picks the library that reads the inputs (None: ``auto``).

    Returns:
        The screener and run info (``model``, ``detector`` dicts for the reports).

    Raises:
        WsiScreenError: bad configuration, model or detector.
    """
    from wsi_screen.aggregate import check_class_codes
    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.detectors import create_detector
    from wsi_screen.reports.identifiers import IdentifierSource
    from wsi_screen.reports.identifiers import check_identifier
    from wsi_screen.reports.identifiers import read_manifest

    ids = dict(identifiers or {})
    manifest = read_manifest(Path(ids["manifest"])) if ids.get("manifest") else None
    id_source = IdentifierSource(  # option values are checked now: a usage error, not a failed input
        check_identifier(ids.get("sample_id"), where="--sample-id", key="sample_id"),
        check_identifier(ids.get("patient_id"), where="--patient-id", key="patient_id"),
        manifest,
    )
    cfg = resolve_config(
        config_path=config_path,
        detector=detector,
        detector_weights=detector_weights,
        device=device,
        batch_size=batch_size,
        config=config,
        input_timeout=input_timeout,
        workers=workers,
        backend=backend,
    )
    det_options = dict(cfg.detector.options)
    if detector_weights is not None:
        det_options["weights"] = detector_weights
    if cfg.detector.name == "yolo":
        det_options.setdefault("device", cfg.classify.device if cfg.classify.device != "auto" else "cpu")
    bundle = resolve_model(model)
    try:
        check_class_codes(cfg.aggregate, bundle.class_names)
    except ConfigError as e:
        msg = f"{config_path or 'configuration'}: {e}"
        raise ConfigError(msg) from e
    try:
        det = create_detector(cfg.detector.name, **det_options)
    except ConfigError as e:
        msg = f"{config_path or 'configuration'}: {e}"
        raise ConfigError(msg) from e
    clf = TimmClassifier(
        bundle,
        device=cfg.classify.device,
        batch_size=cfg.classify.batch_size or None,
        threads=cfg.classify.threads or None,
        reduced_precision=cfg.classify.reduced_precision,
        backend=cfg.classify.backend,
    )
    # reports echo the device and batch size actually used ("auto" and 0 resolved), the same
    # under every batch engine
    cfg = cfg.replace("classify", device=str(clf.device), batch_size=clf.batch_size)
    info = {
        "model": {
            "name": clf.name,
            "sha256": bundle.sha256(),
            "classes": list(bundle.class_names),
            "architecture": bundle.architecture,
            "mpp": bundle.mpp,
            "patch_size_px": bundle.patch_size_px,
            "path": str(bundle.path) if bundle.path else None,
            # probabilities are softmax(logits / T); 1.0: the bundle carries no calibration
            "temperature": clf.temperature,
            # the measured blast confusion the blast % is adjusted for (None: not measured)
            "blast_rates": None if bundle.blast_rates is None else bundle.blast_rates.to_json(),
        },
        "detector": {"name": det.name, "params": det.params()},
    }
    screener = Screener(cfg, det, clf, user_mpp=mpp)
    screener.identifiers = id_source
    screener.reader = reader or "auto"
    return screener, info


def screen_to_folder(
    screener: Screener,
    info: dict[str, Any],
    inputs: list[Path],
    out: Path,
    *,
    stems: list[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    run_keys: Sequence[str] | None = None,
) -> Generator[InputOutcome, None, None]:
    """Screen ``inputs`` into ``out/<stem>/``; yield one outcome per input, in order.

    A folder among ``inputs`` is a case (the fields of one specimen: :func:`screen_case_folder`);
    files between folders are screened together (classification batches span them).
    ``on_batch(n)`` is called after each classification batch of ``n`` cells (progress bars).
    ``run_keys`` (a batch's, one per input) go into each report.json as ``batch.run_key``.
    """
    from wsi_screen.case_screen import screen_case_folder

    stems = stems or unique_stems(inputs)
    keys: list[str | None] = list(run_keys) if run_keys is not None else [None] * len(inputs)
    start = 0
    while start < len(inputs):
        if is_case_folder(inputs[start]):
            yield screen_case_folder(screener, info, inputs[start], out, stems[start], keys[start])
            start += 1
            continue
        end = start
        while end < len(inputs) and not is_case_folder(inputs[end]):
            end += 1
        key_of = dict(zip(stems[start:end], keys[start:end], strict=True))

        screened = screener.screen(
            inputs[start:end], stems=stems[start:end], on_batch=on_batch, close_done=False
        )
        write = partial(_write_and_close, screener, info, out, key_of)
        for item, report in write_behind(
            write, screened, depth=screener.cfg.pipeline.write_behind, nice=screener.cfg.pipeline.worker_nice
        ):
            elapsed = time.perf_counter() - item.started
            yield InputOutcome(item.path, out / item.stem, item.failure, report, elapsed)
        start = end


def _write_and_close(
    screener: Screener, info: dict[str, Any], out: Path, key_of: dict[str, str | None], item: Any
) -> dict[str, Any] | None:
    """Write one input's reports (on the writer thread, behind the model), then close its source."""
    try:
        if not item.ok:
            return None
        return write_item_reports(screener, info, item, out / item.stem, run_key=key_of.get(item.stem))[1]
    finally:
        item.close()
