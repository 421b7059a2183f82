"""Build a screener from options and screen inputs into an output folder (shared by run and batch)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.config import ScreenConfig
from wsi_screen.errors import ConfigError
from wsi_screen.errors import WsiScreenError
from wsi_screen.pipeline import Screener
from wsi_screen.pipeline import unique_stems
from wsi_screen.types import Failure

log = logging.getLogger(__name__)


@dataclass
class InputOutcome:
    """What ``run``/``batch`` report per input."""

    path: Path
    out_dir: Path
    failure: Failure | None
    report: dict[str, Any] | None
    seconds: float

    @property
    def summary_line(self) -> str:
        """One line of key figures."""
        if not self.report:
            return ""
        r = self.report
        blast = r["blast"]["percent"]
        raised = [f["name"] for f in r["flags"] if f["status"] == "raised"]
        undecided = [f["name"] for f in r["flags"] if f["status"] == "indeterminate"]
        return (
            f"{r['cells_detected']} cells detected, {r['cells_counted']} counted, "
            f"blasts {'n/a' if blast is None else f'{blast:.1f} %'}"
            + (f", flags: {', '.join(raised)}" if raised else "")
            + (f", indeterminate: {', '.join(undecided)}" if undecided else "")
        )


def resolve_config(
    *,
    config_path: Path | None = None,
    detector: str | None = None,
    detector_weights: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    config: ScreenConfig | None = None,
    input_timeout: float | None = None,
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
    if detector is None and detector_weights is not None:
        detector = "yolo"  # weights name the YOLO detector: --detector yolo is implied
    if detector is not None and detector != cfg.detector.name:
        cfg = cfg.replace("detector", name=detector, options={})
    if detector_weights is not None and cfg.detector.name != "yolo":
        msg = f"--detector-weights applies to --detector yolo only, not {cfg.detector.name}"
        raise WsiScreenError(msg)
    return cfg


def write_item_reports(
    screener: Screener, info: dict[str, Any], item: Any, out_dir: Path, *, run_key: str | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """Write one screened input's reports into ``out_dir``; return its calls and report.

    A write that fails (a link in OUT, disk full, permission denied) becomes the input's failure
    at stage ``report`` naming the path, and its partial report files are removed; the report
    returned is then None.
    """
    from wsi_screen.reports import write_input_reports

    clf = screener.classifier
    calls = item.merged_calls(clf.class_names, clf.name)
    try:
        report = write_input_reports(
            item,
            out_dir,
            cfg=screener.cfg,
            model_info=info["model"],
            detector_info=info["detector"],
            calls=calls,
            run_key=run_key,
            identifiers=screener.identifiers,
        )
    except WsiScreenError as e:
        item.failure = Failure(str(item.path), "report", type(e).__name__, str(e))
    except OSError as e:  # disk full, permission denied: the message names the path
        where, reason = e.filename or out_dir, e.strerror or str(e)
        item.failure = Failure(str(item.path), "report", type(e).__name__, f"{where}: {reason}")
    else:
        return calls, report
    discard_partial_reports(out_dir)
    return calls, None


def discard_partial_reports(out_dir: Path) -> None:
    """Remove the report files of an input whose report.json was not written (a failed write).

    Every file is complete (atomic writes), but without report.json the set is not a report:
    it goes, so a failed input leaves nothing that looks like a result. A folder holding a
    report.json (an earlier, complete screening) or a symbolic link is left alone.
    """
    from wsi_screen.report_files import CELLS_GEOJSON
    from wsi_screen.report_files import CELLS_PARQUET
    from wsi_screen.report_files import REPORT_HTML
    from wsi_screen.report_files import REPORT_JSON
    from wsi_screen.reports.assets import ASSETS_JSON

    if out_dir.is_symlink() or not out_dir.is_dir() or (out_dir / REPORT_JSON).exists():
        return
    for name in (CELLS_PARQUET, CELLS_GEOJSON, ASSETS_JSON, REPORT_HTML):
        try:
            (out_dir / name).unlink(missing_ok=True)
        except OSError:
            log.warning("%s: could not remove a partial output", out_dir / name)
    with contextlib.suppress(OSError):
        out_dir.rmdir()  # only when empty


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
) -> tuple[Screener, dict[str, Any]]:
    """Resolve config + CLI overrides, load the classifier and detector.

    ``identifiers`` (``sample_id``, ``patient_id``, ``manifest``: a CSV path) say where reports
    take sample and patient identifiers from; inputs' ``.ids.json`` sidecars are always read.

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
        batch_size=cfg.classify.batch_size,
        threads=cfg.classify.threads or None,
        reduced_precision=cfg.classify.reduced_precision,
    )
    # reports echo the device actually used ("auto" resolved), the same under every batch engine
    cfg = cfg.replace("classify", device=str(clf.device))
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
        },
        "detector": {"name": det.name, "params": det.params()},
    }
    screener = Screener(cfg, det, clf, user_mpp=mpp)
    screener.identifiers = id_source
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

    ``on_batch(n)`` is called after each classification batch of ``n`` cells (progress bars).
    ``run_keys`` (a batch's, one per input) go into each report.json as ``batch.run_key``.
    """
    stems = stems or unique_stems(inputs)
    key_of = dict(zip(stems, run_keys, strict=True)) if run_keys is not None else {}
    for item in screener.screen(inputs, stems=stems, on_batch=on_batch):
        out_dir = out / item.stem
        report = None
        if item.ok:
            _, report = write_item_reports(screener, info, item, out_dir, run_key=key_of.get(item.stem))
        yield InputOutcome(item.path, out_dir, item.failure, report, time.perf_counter() - item.started)
