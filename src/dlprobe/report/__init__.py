"""The report: one self-contained HTML page and a Markdown file, built from finished run directories.

    dlprobe report                          every finished run under runs/ -> report/index.html, report/report.md
    dlprobe report runs/fit-function/quick_1a2b3c4d --out my-report/

Organized like the assignment (1-1 Deep vs Shallow, 1-2 Optimization, 1-3 Generalization); for each
experiment: its settings, figures, a table of headline numbers and observations computed from them.
index.html embeds the figures (works from a file:// URL with no network); report.md links PNG copies
in figures/<experiment>/. Both files are written atomically.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ReportError
from ..store import atomic_write_bytes, atomic_write_text
from .collect import ReportData, collect, is_png
from .html import render_html
from .markdown import render_markdown
from .scan import find_run_dirs
from .text import anchor

__all__ = ["build_report", "check_report_dir", "find_run_dirs", "collect", "render_html", "render_markdown"]

HTML_NAME = "index.html"
MARKDOWN_NAME = "report.md"
FIGURES_DIR = "figures"


def build_report(run_dirs: list[Path], out: Path) -> Path:
    """Write out/index.html, out/report.md and out/figures/; returns the HTML path.

    run_dirs: finished run directories (or roots holding them); a registered experiment without one is
    listed as missing. Raises RunDirError for an unfinished or damaged run directory.
    """
    out = Path(out)
    report = collect(run_dirs)
    try:
        links = _copy_figures(report, out)
        atomic_write_text(out / MARKDOWN_NAME, render_markdown(report, links))
        html_path = out / HTML_NAME
        atomic_write_text(html_path, render_html(report))
    except OSError as error:
        raise ReportError(f"cannot write the report to {out}: {error.strerror or error}; choose another directory") from None
    return html_path


def check_report_dir(out: Path) -> None:
    """Fail now (before hours of runs) when the report cannot be written to `out`: creates the directory
    (it is written at the end anyway) and a probe file in it, which is deleted."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ReportError(f"cannot write the report to {out}: {error.strerror or error}; choose another --report-dir") from None


def _copy_figures(report: ReportData, out: Path) -> dict[Path, str]:
    """Copy each shown PNG to out/figures/<experiment>/<name>.png; {source path: link relative to out}."""
    links = {}
    for entry in report.entries:
        if entry.run is None:
            continue
        taken = set()
        for figure in entry.run.figures:
            if not is_png(figure.path):
                continue
            name = anchor(figure.name)
            while name in taken:  # two file names that differ only in punctuation
                name += "-"
            taken.add(name)
            link = f"{FIGURES_DIR}/{anchor(entry.name)}/{name}.png"
            atomic_write_bytes(out / link, figure.path.read_bytes())
            links[figure.path] = link
    return links
