"""Size, render time and browser load time of report.html for a large (default 2,000-cell) slide.

Usage:
    .venv/bin/python benchmarks/report_size.py [--cells 2000] [--gallery 40] [--queue 60] [--crop-px 96]

The slide is procedural (violet discs drawn on demand; no model runs), so only the report stage is
measured: crops + overview (assets), HTML rendering, GeoJSON, and opening the page in headless
Chromium (parse + page script until ready, and the whole headless run minus an empty page's).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "reports"))

from _fake import write_fake_report  # noqa: E402

from wsi_screen.reports.assets import ReportOptions  # noqa: E402

log = logging.getLogger("report_size")

PROBE = '<script>document.body.setAttribute("data-loaded-ms", performance.now().toFixed(1));</script></body>'


def chromium_times(page: Path, work: Path, repeats: int) -> tuple[float, float] | None:
    """Median (in-page ms until the page script finished, headless wall ms minus an empty page)."""
    binary = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if binary is None:
        return None
    probe = work / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    empty = work / "empty.html"
    empty.write_text("<!doctype html><body></body>", encoding="utf-8")

    def run(target: Path, k: int) -> tuple[float, str]:
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", f"--user-data-dir={work / f'p{k}'}",
                "--window-size=1400,1800", "--dump-dom", target.as_uri()]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        return 1000 * (time.perf_counter() - t), proc.stdout

    in_page, wall = [], []
    for k in range(repeats):
        base_ms, _ = run(empty, 100 + k)
        ms, dom = run(probe, k)
        marker = dom.split('data-loaded-ms="', 1)
        if len(marker) == 2:
            in_page.append(float(marker[1].split('"', 1)[0]))
        wall.append(ms - base_ms)
    return statistics.median(in_page) if in_page else float("nan"), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--gallery", type=int, default=ReportOptions.gallery_max_per_class)
    ap.add_argument("--queue", type=int, default=ReportOptions.review_queue_max)
    ap.add_argument("--crop-px", type=int, default=ReportOptions.crop_px)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=(60000, 45000), metavar=("W", "H"),
                    help="input size in pixels (2452 2056: a microscope field)")  # fmt: skip
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = ReportOptions(crop_px=a.crop_px, gallery_max_per_class=a.gallery, review_queue_max=a.queue)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        work = Path(tmp)
        src = work / "slide.svs"
        src.write_bytes(b"placeholder")
        t = time.perf_counter()
        report = write_fake_report(
            work / "OUT" / "slide", src, n_cells=a.cells, size=tuple(a.size), options=opts
        )
        total_s = time.perf_counter() - t
        out = work / "OUT" / "slide"
        from wsi_screen.reports.deepzoom import read_deep_zoom

        dz = read_deep_zoom(out)
        viewer_mb = sum(p.stat().st_size for p in (out / "viewer").rglob("*") if p.is_file()) / 1e6
        import polars as pl

        from wsi_screen.reports.assets import read_assets
        from wsi_screen.reports.html_report import render_report_html

        frame, assets = pl.read_parquet(out / "cells.parquet"), read_assets(out / "report_assets.json")
        t = time.perf_counter()
        render_report_html(report, frame, assets, opts)
        render_s = time.perf_counter() - t
        size = {
            name: (out / name).stat().st_size / 1e6
            for name in ("report.html", "report_assets.json", "cells.geojson", "cells.parquet")
        }
        browser = chromium_times(out / "report.html", work, a.repeats)
    log.info("cells: %d, crops embedded: %d (gallery cap %d/class, queue %d, %d px)",
             a.cells, len(assets.crops), a.gallery, a.queue, a.crop_px)  # fmt: skip
    log.info(
        "report stage (crops + overview + viewer tiles + parquet + geojson + html + json): %.2f s", total_s
    )
    if dz is not None:
        log.info("viewer: %d tiles, %d levels, %d x %d px top level, %.1f MB", dz.tiles, dz.levels, dz.width,
                 dz.height, viewer_mb)  # fmt: skip
    log.info("render_report_html alone: %.3f s", render_s)
    for name, mb in size.items():
        log.info("%-20s %.2f MB", name, mb)
    if browser is None:
        log.info("chromium not installed: load time not measured")
    else:
        log.info("chromium: page script ready after %.0f ms (in-page clock); headless run %.0f ms above an empty page",
                 *browser)  # fmt: skip


if __name__ == "__main__":
    main()
