"""The review report (report.html), rendered with jinja2 with autoescaping on."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

from wsi_screen.io import atomic_write_text


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wsi_screen", "reports/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["basename"] = lambda p: Path(str(p)).name
    return env


def render_report_html(report: dict[str, Any], **context: Any) -> str:
    """Render report.html from the report dict (all values escaped)."""
    return _env().get_template("report.html.j2").render(r=report, **context)


def write_report_html(report: dict[str, Any], path: Path, **context: Any) -> None:
    """Render and write report.html atomically."""
    atomic_write_text(path, render_report_html(report, **context))
