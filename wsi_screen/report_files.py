"""File names of one input's outputs in OUT/<stem>/.

A light module: batch code needs the names without importing the report writers.
"""

from __future__ import annotations

REPORT_JSON = "report.json"
"""The completion marker: written last, so a folder with it holds a finished screening."""
REPORT_HTML = "report.html"
CELLS_PARQUET = "cells.parquet"
CELLS_GEOJSON = "cells.geojson"

MAX_REPORT_JSON_BYTES = 32 << 20
"""The largest report.json wsi-screen reads back (review, index); a review never writes a larger one."""
