"""The report: built from run directories alone, self-contained, escaped, honest about what is missing.

One real fit-function smoke run (through the CLI) feeds most tests; hand-written run directories cover
hostile strings, diverged models, dataset notes, damaged figures and unregistered experiments.
"""

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dlprobe.cli import main
from dlprobe.errors import RunDirError
from dlprobe.experiments import all_experiments
from dlprobe.report import build_report, find_run_dirs
from dlprobe.report.experiments import REPORTS
from dlprobe.report.scan import dataset_notes, diverged, find_keys
from dlprobe.report.text import caption_from_name, format_duration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert(1)</script>"


class Page(HTMLParser):
    """What a browser would see: tags with attributes, element ids, text, and which element is open."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.ids, self.text = [], set(), []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)

    def images(self):
        return [attrs for tag, attrs in self.tags if tag == "img"]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["run", "fit-function", "--profile", "smoke", "--out", str(root), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    html_path = build_report(find_run_dirs(runs), out)
    return html_path, html_path.read_text(encoding="utf-8"), find_run_dirs(runs)[0]


def fake_run(root: Path, experiment: str, summary: dict, config: dict, finished_at="2030-01-01T00:00:00+0000",
             name="quick_00000000", figures=()) -> Path:
    """A hand-written finished run directory (config.json, summary.json, run_info.json, DONE, figures)."""
    run_dir = root / experiment / name
    (run_dir / "figures").mkdir(parents=True)
    record = {"experiment": experiment, "profile": "quick", "config_hash": "00000000", "config": config,
              "seeds": [0], "dlprobe_version": "0.1.0", "torch_version": "2.x", "device": "cpu"}
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "run_info.json").write_text(json.dumps({"wall_time_s": 12.5, "finished_at": finished_at}))
    for figure_name, data in figures:
        (run_dir / "figures" / figure_name).write_bytes(data)
    (run_dir / "DONE").write_text("done\n")
    return run_dir


def test_find_run_dirs_keeps_finished_runs_newest_first(tmp_path):
    old = fake_run(tmp_path, "my-probe", {}, {}, finished_at="2020-01-01T00:00:00+0000", name="quick_a")
    new = fake_run(tmp_path, "my-probe", {}, {}, finished_at="2024-06-01T12:00:00+0000", name="smoke_b")
    (tmp_path / "my-probe" / "quick_unfinished").mkdir()
    (tmp_path / "my-probe" / "quick_unfinished" / "config.json").write_text("{}")
    assert find_run_dirs(tmp_path) == [new, old]
    with pytest.raises(RunDirError, match="does not exist"):
        find_run_dirs(tmp_path / "nowhere")
    with pytest.raises(RunDirError, match="no finished run"):
        find_run_dirs(tmp_path / "my-probe" / "quick_unfinished")
    with pytest.raises(RunDirError, match="unfinished run"):
        build_report([tmp_path / "my-probe" / "quick_unfinished"], tmp_path / "out")
    (old / "summary.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="summary.json is not a JSON object"):
        build_report([old], tmp_path / "out")
    (old / "summary.json").write_text("{broken")
    with pytest.raises(RunDirError, match="cannot read .*summary.json"):
        build_report([old], tmp_path / "out")


def test_summary_scan_finds_notes_and_failures_at_any_depth():
    summary = {"dataset_note": "", "datasets": {"mnist": {"dataset_note": "a 5000-image subset"}},
               "models": [{"status": ["ok", "diverged at step 7"]}, {"status": "diverged at step 2"}, {"status": "ok"}]}
    assert dataset_notes(summary) == [("datasets.mnist.dataset_note", "a 5000-image subset")]
    assert diverged(summary) == [("models[0].status[1]", "diverged at step 7"), ("models[1].status", "diverged at step 2")]
    assert [where for where, _ in find_keys(summary, "status")] == ["models[0].status", "models[1].status", "models[2].status"]


def test_text_helpers():
    assert caption_from_name("grad_norm_mnist-5k") == "Grad norm mnist-5k"
    assert caption_from_name("trajectory") == "Trajectory"
    assert [format_duration(s) for s in (4.25, 185, 3720, None)] == ["4.2 s", "3 min 05 s", "1 h 02 min", "n/a"]


def test_every_figure_is_embedded_as_a_png(built):
    html_path, text, run_dir = built
    page = Page(text)
    sources = [img["src"] for img in page.images()]
    pngs = sorted((run_dir / "figures").glob("*.png"))
    assert len(pngs) >= 2 and len(sources) == len(pngs)
    embedded = set()
    for source in sources:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        data = base64.b64decode(source[len(prefix):], validate=True)
        assert data[:8] == PNG_MAGIC
        embedded.add(data)
    assert embedded == {p.read_bytes() for p in pngs}
    # self-contained: nothing is fetched from anywhere (only data URIs and in-page anchors)
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            assert attrs.get(key) is None or attrs[key].startswith(("data:", "#")), (tag, attrs)
        assert tag not in ("script", "link", "iframe")


def test_settings_table_and_observations_are_shown(built):
    html_path, text, run_dir = built
    page = Page(text)
    record = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    plain = page.plain
    for key, value in record["config"].items():  # every config field, with its value
        shown = "(none)" if value == [] else \
            ", ".join(map(repr, value)) if isinstance(value, list) and isinstance(value[0], float) else \
            ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        assert f"{key} {shown}" in plain, key
    for fragment in ("profile smoke", "seeds 0, 1", "device cpu", "dlprobe 0.1.0", f"torch {record['torch_version']}"):
        assert fragment in plain
    report = REPORTS["fit-function"]
    columns, rows = report.table(summary)
    assert all(column in plain for column in columns)
    assert rows and all(str(row[3]) in plain for row in rows)  # exact parameter counts
    sentences = report.observe(summary, record["config"])
    assert sentences and all(squash(sentence) in plain for sentence in sentences)
    wall = json.loads((run_dir / "run_info.json").read_text())["wall_time_s"]
    assert format_duration(wall) in plain and "total" in plain


def test_every_registered_experiment_has_a_report_module():
    assert list(REPORTS) == [experiment.name for experiment in all_experiments()]
    for name, module in REPORTS.items():
        assert callable(module.observe) and callable(module.table), name
        assert module.__name__.rsplit(".", 1)[1] == name.replace("-", "_")  # named like its experiment module


def test_sections_follow_the_assignment_and_missing_experiments_are_listed(built):
    html_path, text, _ = built
    page = Page(text)
    plain = page.plain
    for heading in ("1-1 Deep vs Shallow", "1-2 Optimization", "1-3 Generalization"):
        assert heading in plain and f"part-{heading[:3]}" in page.ids
    assert "exp-fit-function" in page.ids
    others = [e.name for e in all_experiments() if e.name != "fit-function"]
    missing_box = re.search(r"Missing experiments.*?</div>", text, re.S).group(0)
    for name in others:
        assert name in missing_box and f"exp-{name}" in page.ids
        assert f"Not run: no finished run directory of {name} was given" in plain


def test_markdown_references_copied_figures(built):
    html_path, _, run_dir = built
    markdown = (html_path.parent / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) == len(list((run_dir / "figures").glob("*.png")))
    for link in links:
        target = html_path.parent / link
        assert target.is_file() and target.read_bytes()[:8] == PNG_MAGIC
    assert "## 1-1 Deep vs Shallow" in markdown and "fit\\-function" not in markdown and "### fit-function" in markdown
    assert not any(entity in markdown for entity in ("&lt;", "&gt;", "&amp;"))


def test_markdown_text_reads_as_typed_and_stays_inert():
    from dlprobe.report.markdown import md
    assert md("3 layers (0.01) < 1 layer (0.02) & 5 > 4") == "3 layers (0.01) < 1 layer (0.02) & 5 > 4"
    assert md("<b>x</b> &amp; y") == "\\<b>x\\</b> \\&amp; y"  # no tag, no entity can form
    assert md("> not a quote") == "\\> not a quote" and md("x**2") == "x\\*\\*2"


def test_hostile_strings_are_escaped_and_failures_and_notes_are_visible(runs, tmp_path):
    # a copy of the real run, newer, whose function name, formula, note and status are hostile
    source = find_run_dirs(runs)[0]
    copy = tmp_path / "fit-function" / "quick_hostile"
    shutil.copytree(source, copy)
    record = json.loads((copy / "config.json").read_text())
    record["config"]["functions"] = [HOSTILE]
    (copy / "config.json").write_text(json.dumps(record))
    summary = json.loads((copy / "summary.json").read_text())
    function = summary["functions"].pop("sinc")
    function["formula"] = HOSTILE
    first_model = next(iter(function["models"].values()))
    first_model["status"] = ["ok", "diverged at step 9 <img src=x onerror=alert(2)>"]
    summary["functions"][HOSTILE] = function
    summary["dataset_note"] = "mnist-5k <b onmouseover=alert(3)>subset</b>"
    (copy / "summary.json").write_text(json.dumps(summary))
    (copy / "run_info.json").write_text(json.dumps({"wall_time_s": 1.0, "finished_at": "2099-01-01T00:00:00+0000"}))
    (copy / "figures" / "loss_<script>.png").write_bytes((copy / "figures" / "loss_sinc.png").read_bytes())

    html_path = build_report([source, copy], tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    page = Page(text)
    assert all(tag not in ("script", "img") or tag == "img" and attrs["src"].startswith("data:image/png")
               for tag, attrs in page.tags)
    assert not any(key.startswith("on") for _, attrs in page.tags for key in attrs)
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    plain = page.plain
    assert f"functions {HOSTILE}" in plain  # the settings show the hostile value, as text
    assert f"{HOSTILE}: The " in plain or f"{HOSTILE}: No clear" in plain  # observations quote it, as text
    assert "Failed (diverged) models" in plain and "diverged at step 9 <img src=x onerror=alert(2)>" in plain
    assert "Datasets differ from the assignment" in plain and "<b onmouseover=alert(3)>subset</b>" in plain
    assert str(source) in plain  # the older run of the same experiment is listed by path
    markdown = (html_path.parent / "report.md").read_text(encoding="utf-8")
    # inert by backslash escapes (CommonMark reads "\<" as a literal '<'), never by HTML entities
    assert re.search(r"(?<!\\)<(script|img|b )", markdown) is None
    assert "\\<script>alert(1)\\</script>" in markdown
    assert not any(entity in markdown for entity in ("&lt;", "&gt;", "&amp;"))
    assert all(re.fullmatch(r"figures/[a-z0-9-]+/[a-z0-9-]+\.png", link) for link in re.findall(r"\]\(([^)]+)\)", markdown))


def test_unregistered_experiment_damaged_figure_and_failing_observe(tmp_path):
    fake_run(tmp_path, "my-probe", {"accuracy": 0.875, "label": "<i>x</i>", "nested": {"skip": 1}}, {"width": 8},
             figures=[("curve.png", b"not a png at all")])
    fake_run(tmp_path, "fit-function", {"function_results": {}}, {"budget": 10})  # a layout its observe() does not know
    html_path = build_report(find_run_dirs(tmp_path), tmp_path / "out")
    page = Page(html_path.read_text(encoding="utf-8"))
    plain = page.plain
    assert "Other experiments" in plain and "exp-my-probe" in page.ids
    assert "summary key value accuracy 0.875 label <i>x</i>" in plain and "skip" not in plain
    assert "curve.png is not a PNG file" in plain and not page.images()
    assert "the table could not be computed from summary.json: KeyError: 'functions'" in plain
    assert "the observations could not be computed from summary.json: KeyError: 'functions'" in plain
    assert "'functions' (a summary.json written by an older dlprobe may lack this key: rerun the experiment with --fresh)" in plain


def test_report_command(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--runs", str(runs), "--out", str(out)]) == 0
    assert f"report: {(out / 'index.html').resolve()}" in capsys.readouterr().out
    assert (out / "index.html").stat().st_size > 10_000 and (out / "report.md").is_file()
    assert main(["report", "--runs", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
