"""The ``[report]`` section of the run configuration: what report.html embeds and offers a reviewer."""

from __future__ import annotations

from dataclasses import dataclass

from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config_ranges import check_ranges
from wsi_screen.errors import ConfigError


@dataclass(frozen=True)
class ReportConfig:
    """How much imagery report.html embeds (it must stay quick to open for 2,000-cell slides).

    Attributes:
        crop_px: side of each embedded cell crop (covers the classifier patch's physical area).
        jpeg_quality: JPEG quality of crops, the overview and the viewer tiles (1-100).
        gallery_max_per_class: crops shown per class gallery, most confident first.
        review_queue_max: cells in the review queue.
        overview_max_side: longest side of the overview thumbnail in pixels.
        viewer: write deep-zoom tiles beside report.html for the page's zoomable viewer.
        viewer_max_side: cap on the viewer's full-resolution side in pixels (a field keeps its
            native resolution; a whole slide is shown downsampled to this).
        review_classes: the classes a reviewer may assign, whatever the model covers (the 21
            classes of Matek et al. 2021 by default).
    """

    crop_px: int = 96
    jpeg_quality: int = 80
    gallery_max_per_class: int = 40
    review_queue_max: int = 60
    overview_max_side: int = 1400
    viewer: bool = True
    viewer_max_side: int = 16384
    review_classes: tuple[str, ...] = tuple(MATEK_CLASSES)

    def __post_init__(self) -> None:
        if not 16 <= self.crop_px <= 512:
            msg = f"report.crop_px must be in [16, 512], got {self.crop_px}"
            raise ConfigError(msg)
        if not 1 <= self.jpeg_quality <= 100:
            msg = f"report.jpeg_quality must be in [1, 100], got {self.jpeg_quality}"
            raise ConfigError(msg)
        if self.gallery_max_per_class < 0 or self.review_queue_max < 0:
            msg = "report.gallery_max_per_class and report.review_queue_max must be >= 0"
            raise ConfigError(msg)
        if self.overview_max_side < 64:
            msg = f"report.overview_max_side must be >= 64, got {self.overview_max_side}"
            raise ConfigError(msg)
        if not 256 <= self.viewer_max_side <= 65536:
            msg = f"report.viewer_max_side must be in [256, 65536], got {self.viewer_max_side}"
            raise ConfigError(msg)
        codes = self.review_classes
        if not codes or len(set(codes)) != len(codes) or not all(str(c).strip() for c in codes):
            msg = f"report.review_classes must be distinct non-empty class codes, got {list(codes)}"
            raise ConfigError(msg)
        check_ranges("report", self)
