"""Report writers: report.json (schema-checked), report.html, cells.parquet."""

from __future__ import annotations

from wsi_screen.reports.writer import write_input_reports

__all__ = ["write_input_reports"]
