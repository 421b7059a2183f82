"""Run configuration: frozen dataclasses with documented defaults, loaded from TOML.

Values stack: dataclass defaults -> TOML file -> CLI overrides. Each stage gets only its section.
Nothing clinical is a constant in code: class groups, cut-offs and thresholds live here and the
resolved configuration is echoed into every report.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from wsi_screen.config_ranges import check_ranges
from wsi_screen.errors import ConfigError
from wsi_screen.limits import LimitsConfig
from wsi_screen.pipeline_config import PipelineConfig
from wsi_screen.regions_config import RegionsConfig
from wsi_screen.regions_config import check_unit
from wsi_screen.report_config import ReportConfig
from wsi_screen.scale_config import ScaleConfig


@dataclass(frozen=True)
class TilingConfig:
    """How sources are cut into overlapping tiles.

    Attributes:
        tile_size_px: tile side in pixels at the detection scale.
        overlap_um: overlap between neighbouring tiles; must exceed the largest cell diameter so
            every cell is whole in the tile that owns it.
    """

    tile_size_px: int = 2048
    overlap_um: float = 30.0

    def __post_init__(self) -> None:
        if self.tile_size_px < 64:
            msg = f"tiling.tile_size_px must be >= 64, got {self.tile_size_px}"
            raise ConfigError(msg)
        if not self.overlap_um > 0 or not math.isfinite(self.overlap_um):
            msg = f"tiling.overlap_um must be a positive number, got {self.overlap_um}"
            raise ConfigError(msg)
        check_ranges("tiling", self)


@dataclass(frozen=True)
class DetectorConfig:
    """Which localiser runs and its options (validated by the detector itself)."""

    name: str = "foreground"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HairyCellConfig:
    """Hairy-cell-leukaemia flag: raised when confident HAC calls reach a count and a fraction."""

    hairy_class: str = "HAC"
    min_count: int = 5
    min_percent: float = 2.0
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        if not self.hairy_class:
            msg = "aggregate.hairy_cell.hairy_class must name a class"
            raise ConfigError(msg)
        if self.min_count < 0:
            msg = f"aggregate.hairy_cell.min_count must be >= 0, got {self.min_count}"
            raise ConfigError(msg)
        _check_percent("aggregate.hairy_cell.min_percent", self.min_percent)
        _check_unit("aggregate.hairy_cell.min_confidence", self.min_confidence)
        check_ranges("aggregate.hairy_cell", self)


@dataclass(frozen=True)
class AggregateConfig:
    """Counting rules for the differential, blast %, M:E ratio, flags and QC.

    Attributes:
        excluded_classes: classes outside the differential denominator (reported separately).
        blast_classes: blast-equivalent classes (numerator of the blast %).
        blast_cutoffs_percent: clinical cut-offs flagged against.
        myeloid_classes: numerator of the M:E ratio (granulocytic lineage).
        erythroid_classes: denominator of the M:E ratio.
        min_cells: counted cells needed for an adequate differential (ICSH: 500 for marrow).
        low_confidence: a call below this maximum probability counts as low-confidence.
        ci_method: ``wilson`` or ``exact`` (Clopper-Pearson) 95 % intervals.
        hairy_cell: the hairy-cell flag settings.
        max_artefact_percent: QC warning when artefacts exceed this share of all detections.
        artefact_class: the class of artefacts (QC artefact fraction and warning).
        not_identifiable_class: the class of cells that cannot be identified (QC fraction).
        domain_gate: when the model carries a domain reference and an input is out of its domain,
            every blast and hairy-cell flag becomes ``not_assessable`` (``qc.domain`` says why).
        domain_margin: a domain score within this of its threshold (1.0) is ``borderline``: the
            gated flags are then not decided (``indeterminate``); see :mod:`wsi_screen.domain_gate`.
        blast_adjustment: ``model``: when the model carries its measured blast confusion
            (``blast_rates``), the blast share is adjusted for it and the cut-offs decide on the
            adjusted interval (:mod:`wsi_screen.blast`); ``none``: on the count's interval alone.
    """

    excluded_classes: tuple[str, ...] = ("ART", "NIF", "OTH", "KSC")
    blast_classes: tuple[str, ...] = ("BLA",)
    blast_cutoffs_percent: tuple[float, ...] = (5.0, 10.0, 20.0)
    myeloid_classes: tuple[str, ...] = (
        "NGS", "NGB", "MMZ", "MYB", "PMO", "BLA", "EOS", "BAS", "FGC", "ABE",
    )  # fmt: skip
    erythroid_classes: tuple[str, ...] = ("PEB", "EBO")
    min_cells: int = 500
    low_confidence: float = 0.5
    ci_method: str = "wilson"
    hairy_cell: HairyCellConfig = field(default_factory=HairyCellConfig)
    max_artefact_percent: float = 25.0
    artefact_class: str = "ART"
    not_identifiable_class: str = "NIF"
    domain_gate: bool = True
    domain_margin: float = 0.1
    blast_adjustment: str = "model"

    def __post_init__(self) -> None:
        if self.blast_adjustment not in ("model", "none"):
            msg = f"aggregate.blast_adjustment must be 'model' or 'none', got {self.blast_adjustment!r}"
            raise ConfigError(msg)
        if self.ci_method not in ("wilson", "exact"):
            msg = f"aggregate.ci_method must be 'wilson' or 'exact', got {self.ci_method!r}"
            raise ConfigError(msg)
        if self.min_cells < 1:
            msg = f"aggregate.min_cells must be >= 1, got {self.min_cells}"
            raise ConfigError(msg)
        _check_unit("aggregate.low_confidence", self.low_confidence)
        _check_percent("aggregate.max_artefact_percent", self.max_artefact_percent)
        for cut in self.blast_cutoffs_percent:
            _check_percent("aggregate.blast_cutoffs_percent", cut)
        if not self.blast_classes:
            msg = "aggregate.blast_classes must name at least one class"
            raise ConfigError(msg)
        overlap = set(self.blast_classes) & set(self.excluded_classes)
        if overlap:
            msg = f"aggregate.blast_classes and excluded_classes overlap: {sorted(overlap)}"
            raise ConfigError(msg)
        if self.hairy_cell.hairy_class in self.excluded_classes:
            msg = (
                f"aggregate.hairy_cell.hairy_class {self.hairy_cell.hairy_class!r} is in excluded_classes: "
                "the flag is a share of counted cells"
            )
            raise ConfigError(msg)
        check_ranges("aggregate", self)


@dataclass(frozen=True)
class ClassifyConfig:
    """Inference settings."""

    batch_size: int = 0  # 0: chosen for the device (wsi_screen.device.default_batch_size)
    device: str = "auto"
    threads: int = 0  # 0: all cores this process may use
    reduced_precision: bool = True  # bf16 on CPUs with AMX/AVX512-BF16, AMP on CUDA
    backend: str = "torch"  # "onnx": ONNX Runtime (fp32), "openvino": OpenVINO, both on the CPU (extras)

    def __post_init__(self) -> None:
        if self.backend not in ("torch", "onnx", "openvino"):
            msg = f"classify.backend must be 'torch', 'onnx' or 'openvino', got {self.backend!r}"
            raise ConfigError(msg)
        if not 0 <= self.batch_size <= 65536:
            msg = f"classify.batch_size must be 0-65536 (0: chosen for the device), got {self.batch_size}"
            raise ConfigError(msg)
        if not 0 <= self.threads <= 1024:
            msg = f"classify.threads must be 0-1024 (0: all cores), got {self.threads}"
            raise ConfigError(msg)
        check_ranges("classify", self)


STOPPING_METHODS = ("alpha_spending", "confidence_sequence")


@dataclass(frozen=True)
class StoppingConfig:
    """Stop counting when every blast cut-off is decided (wsi_screen.stopping; off by default).

    For slides (counted regions, best quality first) and cases (the regions of their fields):
    cells are counted in that order and counting stops at the first look where every cut-off is
    decided on the sequential rule's interval, or when the regions run out.

    Attributes:
        enabled: apply the rule (fields screened alone never stop early).
        method: ``alpha_spending`` or ``confidence_sequence``.
        alpha: total two-sided error over all looks.
        min_cells: the first look.
        look_every: counted cells between looks.
    """

    enabled: bool = False
    method: str = "alpha_spending"
    alpha: float = 0.05
    min_cells: int = 500
    look_every: int = 100

    def __post_init__(self) -> None:
        if self.method not in STOPPING_METHODS:
            msg = f"stopping.method must be one of {', '.join(STOPPING_METHODS)}, got {self.method!r}"
            raise ConfigError(msg)
        check_ranges("stopping", self)  # names the key; alpha's ends are excluded below
        if not 0.0 < self.alpha < 1.0 or self.min_cells < 1 or self.look_every < 1:
            msg = "stopping: alpha must be in (0, 1), min_cells and look_every >= 1"
            raise ConfigError(msg)


@dataclass(frozen=True)
class ScreenConfig:
    """The whole run configuration."""

    tiling: TilingConfig = field(default_factory=TilingConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    aggregate: AggregateConfig = field(default_factory=AggregateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # every section, also one that does not check itself (limits)
            check_ranges(f.name, getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (echoed into reports)."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> ScreenConfig:
        """Build from nested dicts; unknown keys are errors naming the dotted key."""
        built: ScreenConfig = _build(cls, data, where)
        return built

    @classmethod
    def from_file(cls, path: str | Path) -> ScreenConfig:
        """Load a TOML file (sections ``tiling``, ``detector``, ``classify``, ``aggregate``, ``report``, ``regions``, ``limits``, ``stopping``, ``pipeline``, ``scale``)."""
        from wsi_screen.textfiles import read_toml

        path = Path(path)  # size, nesting depth and UTF-8 are checked: one-line errors, no traceback
        return cls.from_dict(read_toml(path, error=ConfigError), where=str(path))

    def replace(self, section: str, **changes: Any) -> ScreenConfig:
        """Return a copy with fields of one section changed (CLI overrides)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


def _check_unit(key: str, value: float) -> None:
    check_unit(key, value)


def _check_percent(key: str, value: float) -> None:
    if not 0.0 <= value <= 100.0:  # also false for NaN
        msg = f"{key} must be a percentage in [0, 100], got {value}"
        raise ConfigError(msg)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        msg = f"{where}: {prefix.rstrip('.') or 'top level'} must be a table"
        raise ConfigError(msg)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        msg = f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(fields)}"
        raise ConfigError(msg)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        key = prefix + name
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, where, key + ".")
        elif isinstance(default, tuple):
            if not isinstance(value, list):
                msg = f"{where}: {key} must be a list, got {type(value).__name__}"
                raise ConfigError(msg)
            kwargs[name] = tuple(_scalar(default[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                msg = f"{where}: {key} must be a table, got {type(value).__name__}"
                raise ConfigError(msg)
            kwargs[name] = dict(value)
        else:
            kwargs[name] = _scalar(default, value, where, key)
    try:
        return cls(**kwargs)
    except TypeError as e:
        msg = f"{where}: {e}"
        raise ConfigError(msg) from e
    except ConfigError as e:
        msg = f"{where}: {e}"
        raise ConfigError(msg) from e


def _scalar(default: Any, value: Any, where: str, key: str) -> Any:
    """Check one TOML value against the type of its default (bool, int, float or str)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            msg = f"{where}: {key} must be true or false, got {value!r}"
            raise ConfigError(msg)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            shown = (
                f"{value!r:.40}"
                if not isinstance(value, int) or value.bit_length() < 100
                else "a longer number"
            )
            msg = f"{where}: {key} must be a whole number (64-bit, as TOML has them), got {shown}"
            raise ConfigError(msg)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            msg = f"{where}: {key} must be a finite number, got {value!r}"
            raise ConfigError(msg)
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        msg = f"{where}: {key} must be a string, got {value!r}"
        raise ConfigError(msg)
    return value
