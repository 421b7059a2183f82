"""Configuration section ``[scale]``: checking the pixel size against the red cells in view."""

from __future__ import annotations

from dataclasses import dataclass

from wsi_screen.errors import ConfigError


@dataclass(frozen=True)
class ScaleConfig:
    """How the red cells of an input check (or stand in for) its pixel size.

    Attributes:
        red_cells: measure the red cells of every input (a field whole; a slide in one level-0
            window at its centre) and record the estimate in report.json ``input.mpp_estimate``.
        rbc_diameter_um: the red-cell diameter taken as known (7.5 um: the textbook mean of a
            normal red cell; dried, stained films measure about 7.2-7.5 um). Calibrate per lab.
        min_cells: fewest whole, isolated red cells an estimate rests on.
        warn_difference: relative difference between the estimate and the file's or user's pixel
            size above which the report warns.
        use_when_missing: with no pixel size in the file and no ``--mpp``, screen at the
            estimate (saying so) instead of assuming the model's training scale.
        slide_window_px: side of the level-0 window a slide's red cells are measured in.
    """

    red_cells: bool = True
    rbc_diameter_um: float = 7.5
    min_cells: int = 15
    warn_difference: float = 0.15
    use_when_missing: bool = True
    slide_window_px: int = 2048

    def __post_init__(self) -> None:
        """Check the values' meaning (their ranges are in :mod:`wsi_screen.config_ranges`)."""
        if not 0 < self.warn_difference < 1:
            msg = f"scale.warn_difference must be in (0, 1), got {self.warn_difference}"
            raise ConfigError(msg)
