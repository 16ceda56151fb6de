"""The report as one self-contained HTML page: inline CSS, figures as base64 PNG data URIs, no scripts.

Every string that comes from a run directory (names, config values, summary strings, observations that
may quote user expressions, file names) goes through `escape` before it reaches the page.
"""

from __future__ import annotations

import base64
from html import escape as _escape

from .collect import ExperimentEntry, ReportData, RunRecord, is_png
from .models import model_tables
from .text import anchor, format_config_value, format_duration, format_value
from .theme import CSS


def escape(value) -> str:
    return _escape(str(value), quote=True)


def render_html(report: ReportData) -> str:
    """The whole page as text."""
    body = [_header(report)]
    for section in report.sections:
        body.append(f'<section id="part-{anchor(section.key)}">')
        heading = f"{section.key} {section.title}" if section.key != "other" else section.title
        body.append(f"<h2>{escape(heading)}</h2>")
        if section.question:
            body.append(f'<p class="section-question">Question: {escape(section.question)}</p>')
        body.extend(_experiment(entry) for entry in section.experiments)
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>dlprobe report</title>\n<style>" + CSS + "</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _header(report: ReportData) -> str:
    shown = [e for e in report.entries if e.run]
    parts = ['<header id="top">', "<h1>dlprobe report: the deep-learning-theory experiments</h1>",
             f'<p class="meta">Generated {escape(report.generated_at)} from {len(shown)} finished run'
             f'{"s" if len(shown) != 1 else ""}; every number below is read from the run directories.</p>',
             *_alerts(report), _contents(report), '<h2 id="environment">Environment and wall time</h2>',
             '<div class="facts"><div><h3>Environment</h3>' + _key_value_table(report.environment()) + "</div>"]
    rows = [[escape(e.section), f'<a href="#exp-{anchor(e.name)}">{escape(e.name)}</a>', escape(e.run.profile),
             escape(format_duration(e.run.wall_time)), escape(e.run.info.get("finished_at", "n/a"))] for e in shown]
    footer = ["", "total", "", escape(format_duration(report.total_wall_time)), ""]
    parts.append("<div><h3>Wall time</h3>" + _table(["part", "experiment", "profile", "wall time", "finished"], rows, footer, raw=True) + "</div></div>")
    parts.append("</header>")
    return "\n".join(parts)


def _alerts(report: ReportData) -> list[str]:
    """Dataset shortfalls, diverged models and missing experiments, visible before anything else."""
    boxes = []
    notes = [(e.name, note) for e in report.entries for _, note in e.dataset_notes]
    if notes:
        items = "".join(f"<li><b>{escape(name)}</b>: {escape(note)}</li>" for name, note in dict.fromkeys(notes))
        boxes.append(f'<div class="box note"><p><b>Datasets differ from the assignment:</b></p><ul>{items}</ul></div>')
    failures = [(e.name, where, status) for e in report.entries for where, status in e.failures]
    if failures:
        items = "".join(f"<li><b>{escape(n)}</b> <code>{escape(w)}</code>: {escape(s)}</li>" for n, w, s in failures)
        boxes.append(f'<div class="box warn"><p><b>Failed (diverged) models:</b></p><ul>{items}</ul></div>')
    if report.missing:
        names = ", ".join(f'<a href="#exp-{anchor(e.name)}">{escape(e.name)}</a>' for e in report.missing)
        boxes.append(f'<div class="box missing"><p><b>Missing experiments</b> (registered, but no finished run was given): {names}</p></div>')
    return boxes


def _contents(report: ReportData) -> str:
    items = []
    for section in report.sections:
        heading = f"{section.key} {section.title}" if section.key != "other" else section.title
        inner = "".join(
            f'<li><a href="#exp-{anchor(e.name)}">{escape(e.name)}</a>: {escape(e.title)}'
            + ("" if e.run else ' <span class="status-missing">(missing)</span>') + "</li>" for e in section.experiments)
        items.append(f'<li><a href="#part-{anchor(section.key)}">{escape(heading)}</a><ol>{inner}</ol></li>')
    return f'<nav class="toc"><h2>Contents</h2><ol><li><a href="#environment">Environment and wall time</a></li>{"".join(items)}</ol></nav>'


def _experiment(entry: ExperimentEntry) -> str:
    parts = [f'<article id="exp-{anchor(entry.name)}">', f"<h3>{escape(entry.name)}: {escape(entry.title)}</h3>",
             f'<p class="description">{escape(entry.description)}</p>']
    run = entry.run
    if run is None:
        parts.append(f'<div class="box missing"><p>Not run: no finished run directory of <b>{escape(entry.name)}</b> was given. '
                     f"Run it with <code>dlprobe run {escape(entry.name)} --profile quick</code>.</p></div></article>")
        return "\n".join(parts)
    for where, note in entry.dataset_notes:
        parts.append(f'<div class="box note"><p><b>Dataset note</b> (<code>{escape(where)}</code>): {escape(note)}</p></div>')
    if entry.failures:
        items = "".join(f"<li><code>{escape(w)}</code>: {escape(s)}</li>" for w, s in entry.failures)
        parts.append(f'<div class="box warn"><p><b>Diverged models</b> (the loss became NaN or infinite):</p><ul>{items}</ul></div>')
    for problem in entry.problems:
        parts.append(f'<div class="box warn"><p>{escape(problem)}</p></div>')
    parts.append("<h4>Settings</h4>" + _settings(run))
    tables = model_tables(run.summary)
    if tables:
        parts.append("<h4>Models</h4>" + "".join(f"<p>{escape(heading)}</p>" + _table(columns, rows, footer or None)
                                                 for heading, columns, rows, footer in tables))
    if run.figures:
        parts.append("<h4>Figures</h4>" + _figures(run))
    if entry.rows:
        title = "Summary values" if entry.table_is_fallback else "Headline numbers"
        parts.append(f"<h4>{title}</h4>" + _table(entry.columns, entry.rows))
    if entry.observations:
        items = "".join(f"<li>{escape(sentence)}</li>" for sentence in entry.observations)
        parts.append(f'<h4>Observations</h4><ul class="observations">{items}</ul>')
    if entry.older:
        items = "".join(f"<li><code>{escape(r.path)}</code> ({escape(r.profile)}, finished {escape(r.info.get('finished_at', 'n/a'))})</li>"
                        for r in entry.older)
        parts.append(f"<h4>Other finished runs of {escape(entry.name)}</h4><ul>{items}</ul>")
    parts.append("</article>")
    return "\n".join(parts)


def _settings(run: RunRecord) -> str:
    record = run.record
    line = [("profile", run.profile), ("seeds", format_value(record.get("seeds"))), ("device", format_value(record.get("device"))),
            ("dlprobe", format_value(record.get("dlprobe_version"))), ("torch", format_value(record.get("torch_version"))),
            ("wall time", format_duration(run.wall_time)), ("config hash", format_value(record.get("config_hash")))]
    head = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in line)
    config = record.get("config", {}) if isinstance(record.get("config"), dict) else {}
    fields = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(format_config_value(v))}</dd></div>" for k, v in config.items())
    metrics = f"{run.metric_rows} rows" + (f" ({escape(', '.join(run.metric_names[:12]))}{', ...' if len(run.metric_names) > 12 else ''})" if run.metric_names else "")
    files = f'<p class="meta">Run directory <code>{escape(run.path)}</code>; metrics.csv: {metrics}.</p>'
    return f'<p>{head}</p><dl class="settings">{fields}</dl>{files}'


def _figures(run: RunRecord) -> str:
    items = []
    for figure in run.figures:
        caption = f"{escape(figure.caption)} <code>{escape(figure.path.name)}</code>"
        if not is_png(figure.path):
            items.append(f'<div class="box warn"><p>Figure <code>{escape(figure.path.name)}</code> is not a PNG file (damaged?).</p></div>')
            continue
        data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
        items.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(figure.caption)}">'
                     f"<figcaption>{caption}</figcaption></figure>")
    return f'<div class="figures">{"".join(items)}</div>'


def _key_value_table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>"


def _table(columns: list[str], rows: list[list[str]], footer: list[str] | None = None, raw: bool = False) -> str:
    """A table; cells are escaped here unless `raw` (the caller escaped them and added links)."""
    cell = (lambda v: str(v)) if raw else escape
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    foot = "<tfoot><tr>" + "".join(f"<td>{cell(v)}</td>" for v in footer) + "</tr></tfoot>" if footer else ""
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table></div>'
