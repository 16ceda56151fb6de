"""Reading finished run directories into the report's data (plain dataclasses, no markup).

Everything comes from the run directories on disk (config.json, run_info.json, summary.json,
metrics.csv, figures/*.png), the experiment registry (section, title) and each experiment's report module
(report/experiments/: observe(), table()). A registered experiment without a run is kept as missing; a run
of an unregistered experiment goes to an extra section. Errors raised by a report module's observe()/table()
are kept as visible problems, so one old summary layout does not take the whole report down.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import paths
from ..experiments import all_experiments
from ..errors import RunDirError
from ..store import read_json
from . import scan
from .experiments import REPORTS
from .text import caption_from_name, format_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# assignment part -> (short title, the question it asks)
SECTIONS = {
    "1-1": ("Deep vs Shallow", "does a deeper network do better than a shallow one with the same number of parameters?"),
    "1-2": ("Optimization", "how do the weights move, how does the gradient norm behave, and where does training stop when the gradient is almost zero?"),
    "1-3": ("Generalization", "can a network memorize random labels, and do parameter count, flatness and sensitivity explain generalization?"),
}
OTHER_SECTION = ("Other experiments", "runs of experiments this version of dlprobe does not register")


@dataclass(frozen=True)
class FigureFile:
    name: str  # file stem, e.g. "loss_sinc"
    caption: str
    path: Path


@dataclass
class RunRecord:
    path: Path
    experiment: str
    record: dict  # config.json: experiment, profile, config, seeds, versions, device
    summary: dict
    info: dict  # run_info.json: wall_time_s, finished_at, python, platform, torch_threads
    figures: list[FigureFile]
    metric_rows: int
    metric_names: list[str]

    @property
    def profile(self) -> str:
        return str(self.record.get("profile", "?"))

    @property
    def wall_time(self):
        return self.info.get("wall_time_s")


@dataclass
class ExperimentEntry:
    name: str
    section: str
    title: str
    description: str
    run: RunRecord | None = None  # the newest finished run; None: missing
    older: list[RunRecord] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    table_is_fallback: bool = False  # no report module: the summary's top-level scalars
    observations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # observe()/table() that raised
    dataset_notes: list[tuple[str, str]] = field(default_factory=list)  # (where in summary.json, note)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (where, "diverged at step N")


@dataclass
class Section:
    key: str  # "1-1"
    title: str
    question: str
    experiments: list[ExperimentEntry]


@dataclass
class ReportData:
    sections: list[Section]
    generated_at: str

    @property
    def entries(self) -> list[ExperimentEntry]:
        return [entry for section in self.sections for entry in section.experiments]

    @property
    def missing(self) -> list[ExperimentEntry]:
        return [entry for entry in self.entries if entry.run is None]

    @property
    def total_wall_time(self) -> float:
        return sum(e.run.wall_time for e in self.entries if e.run and isinstance(e.run.wall_time, (int, float)))

    def environment(self) -> list[tuple[str, str]]:
        """(label, value) pairs; several distinct values across runs are all listed."""
        runs = [entry.run for entry in self.entries if entry.run]
        rows = []
        for label, source, key in (("dlprobe", "record", "dlprobe_version"), ("torch", "record", "torch_version"),
                                   ("device", "record", "device"), ("python", "info", "python"),
                                   ("platform", "info", "platform"), ("torch threads", "info", "torch_threads")):
            values = dict.fromkeys(format_value(getattr(run, source).get(key)) for run in runs)
            rows.append((label, ", ".join(values) or "n/a"))
        profiles = dict.fromkeys(run.profile for run in runs)
        rows.append(("profiles", ", ".join(profiles) or "n/a"))
        return rows


def read_run(run_dir: Path) -> RunRecord:
    """One finished run directory; a damaged JSON file is a RunDirError naming it."""
    run_dir = Path(run_dir)
    record, summary = read_json(run_dir / paths.CONFIG), read_json(run_dir / paths.SUMMARY)
    for name, value in ((paths.CONFIG, record), (paths.SUMMARY, summary)):
        if not isinstance(value, dict):
            raise RunDirError(f"{run_dir / name} is not a JSON object; rerun that experiment with --fresh")
    info_path = run_dir / paths.RUN_INFO
    info = read_json(info_path) if info_path.exists() else {}
    figures = [FigureFile(p.stem, caption_from_name(p.stem), p) for p in sorted((run_dir / paths.FIGURES).glob("*.png"))]
    rows, names = _metrics_overview(run_dir / paths.METRICS)
    return RunRecord(path=run_dir, experiment=str(record.get("experiment", run_dir.parent.name)), record=record,
                     summary=summary, info=info if isinstance(info, dict) else {},
                     figures=figures, metric_rows=rows, metric_names=names)


def _metrics_overview(path: Path) -> tuple[int, list[str]]:
    """(number of rows, metric names in first-seen order) of metrics.csv; (0, []) when absent."""
    if not path.exists():
        return 0, []
    count, names = 0, {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            count += 1
            names.setdefault(row.get("name", ""), None)
    return count, list(names)


def collect(run_dirs: list[Path]) -> ReportData:
    """The report's data from finished run directories (see scan.expand_run_dirs for what is accepted)."""
    runs: dict[str, list[RunRecord]] = {}
    for run_dir in scan.expand_run_dirs(run_dirs):  # newest first within an experiment
        run = read_run(run_dir)
        runs.setdefault(run.experiment, []).append(run)
    sections = {key: Section(key, title, question, []) for key, (title, question) in SECTIONS.items()}
    for experiment in all_experiments():
        entry = ExperimentEntry(experiment.name, experiment.section, experiment.title, experiment.description)
        _fill(entry, runs.pop(experiment.name, []), REPORTS.get(experiment.name))
        sections.setdefault(experiment.section, Section(experiment.section, experiment.section, "", [])).experiments.append(entry)
    if runs:  # finished runs of experiments the registry does not know
        other = Section("other", *OTHER_SECTION, [])
        for name, found in sorted(runs.items()):
            entry = ExperimentEntry(name, "other", name, "not a registered experiment")
            _fill(entry, found, None)
            other.experiments.append(entry)
        sections["other"] = other
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ReportData([s for s in sections.values() if s.experiments], generated)


def _fill(entry: ExperimentEntry, found: list[RunRecord], report) -> None:
    """entry's run, table and observations from its newest finished run; report: its report module (None: none)."""
    if not found:
        return
    entry.run, entry.older = found[0], found[1:]
    summary, config = entry.run.summary, entry.run.record.get("config", {})
    entry.dataset_notes = scan.dataset_notes(summary)
    entry.failures = scan.diverged(summary)
    if report is None:
        entry.columns, entry.table_is_fallback = ["summary key", "value"], True
        entry.rows = [[key, format_value(value)] for key, value in summary.items() if not isinstance(value, (dict, list))]
    else:
        try:
            columns, rows = report.table(summary)
            entry.columns, entry.rows = [str(c) for c in columns], [[format_value(cell) for cell in row] for row in rows]
        except Exception as error:  # a report module's table() on an older summary layout: shown, not fatal
            entry.problems.append(f"the table could not be computed from summary.json: {_explain(error)}")
        try:
            entry.observations = [str(sentence) for sentence in report.observe(summary, config)]
        except Exception as error:
            entry.problems.append(f"the observations could not be computed from summary.json: {_explain(error)}")


def _explain(error: Exception) -> str:
    """A report module's error as a problem line; a missing key usually means a summary.json written by an
    older dlprobe (its run directory is still reused), which lacks a statistic the run now records."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, KeyError):
        text += " (a summary.json written by an older dlprobe may lack this key: rerun the experiment with --fresh)"
    return text


def is_png(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(PNG_MAGIC)) == PNG_MAGIC
