"""The report as Markdown (report.md) referencing PNG copies in figures/ next to it.

Strings from run directories are made inert with backslash escapes only (no HTML entities, so the raw file
reads as typed): Markdown punctuation, a '<' that could open an HTML tag, an '&' that could start an entity,
and a leading '>'. A user expression such as `x**2` or `<b>` shows as typed, and "a < b" stays "a < b".
"""

from __future__ import annotations

import re
from pathlib import Path

from .collect import ExperimentEntry, ReportData
from .models import model_tables
from .text import format_config_value, format_duration, format_value

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}#|!~])")
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")  # CommonMark raw HTML starts so
_ENTITY_OPEN = re.compile(r"&(?=[A-Za-z#])")  # an entity or numeric character reference starts so


def md(value) -> str:
    """Inline text safe for Markdown and its embedded HTML; newlines folded into spaces."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    text = _TAG_OPEN.sub(r"\\<", _ENTITY_OPEN.sub(r"\\&", text))
    return "\\" + text if text.startswith(">") else text


def render_markdown(report: ReportData, figure_links: dict[Path, str]) -> str:
    """The whole report; figure_links maps each figure's path in its run directory to its link in figures/."""
    lines = ["# dlprobe report: the deep-learning-theory experiments", "",
             f"Generated {md(report.generated_at)}; every number below is read from the run directories.", "",
             "## Environment", "", *_table(["", "value"], [[k, v] for k, v in report.environment()]), ""]
    shown = [e for e in report.entries if e.run]
    rows = [[e.section, e.name, e.run.profile, format_duration(e.run.wall_time), e.run.info.get("finished_at", "n/a")] for e in shown]
    rows.append(["", "total", "", format_duration(report.total_wall_time), ""])
    lines += ["### Wall time", "", *_table(["part", "experiment", "profile", "wall time", "finished"], rows), ""]
    for entry in report.entries:
        for _, note in entry.dataset_notes:
            lines += [f"> **Dataset note ({md(entry.name)})**: {md(note)}", ""]
        for where, status in entry.failures:
            lines += [f"> **Diverged ({md(entry.name)})**: {md(where)}: {md(status)}", ""]
    if report.missing:
        lines += [f"> **Missing experiments** (registered, but no finished run was given): {', '.join(md(e.name) for e in report.missing)}", ""]
    for section in report.sections:
        heading = f"{section.key} {section.title}" if section.key != "other" else section.title
        lines += [f"## {md(heading)}", ""]
        if section.question:
            lines += [f"Question: {md(section.question)}", ""]
        for entry in section.experiments:
            lines += _experiment(entry, figure_links)
    return "\n".join(lines) + "\n"


def _experiment(entry: ExperimentEntry, figure_links: dict[Path, str]) -> list[str]:
    lines = [f"### {md(entry.name)}: {md(entry.title)}", "", md(entry.description), ""]
    run = entry.run
    if run is None:
        return lines + [f"**Not run**: no finished run directory was given (`dlprobe run {entry.name} --profile quick`).", ""]
    for problem in entry.problems:
        lines += [f"> **Problem**: {md(problem)}", ""]
    record = run.record
    lines += ["#### Settings", "",
              f"profile **{md(run.profile)}**, seeds **{md(format_value(record.get('seeds')))}**, device **{md(format_value(record.get('device')))}**, "
              f"dlprobe {md(format_value(record.get('dlprobe_version')))}, torch {md(format_value(record.get('torch_version')))}, "
              f"wall time {md(format_duration(run.wall_time))}; run directory {md(run.path)}", ""]
    config = record.get("config", {}) if isinstance(record.get("config"), dict) else {}
    lines += [*_table(["field", "value"], [[k, format_config_value(v)] for k, v in config.items()]), ""]
    tables = model_tables(run.summary)
    if tables:
        lines += ["#### Models", ""]
        for heading, columns, rows, footer in tables:
            lines += [md(heading), "", *_table(columns, rows + ([footer] if footer else [])), ""]
    if run.figures:
        lines += ["#### Figures", ""]
        for figure in run.figures:
            if figure.path in figure_links:
                lines += [f"![{md(figure.caption)}]({figure_links[figure.path]})", "", f"*{md(figure.caption)}*", ""]
            else:
                lines += [f"> figure {md(figure.path.name)} is not a PNG file (damaged?)", ""]
    if entry.rows:
        lines += ["#### " + ("Summary values" if entry.table_is_fallback else "Headline numbers"), "", *_table(entry.columns, entry.rows), ""]
    if entry.observations:
        lines += ["#### Observations", "", *[f"- {md(sentence)}" for sentence in entry.observations], ""]
    if entry.older:
        lines += [f"Other finished runs of {md(entry.name)}: " + "; ".join(md(r.path) for r in entry.older), ""]
    return lines


def _table(columns: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(md(c) for c in columns) + " |", "|" + "---|" * len(columns),
            *["| " + " | ".join(md(cell) for cell in row) + " |" for row in rows]]
