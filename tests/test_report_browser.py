"""The report in a real browser: headless Chromium opens index.html from a file:// URL with no network.

A probe copy of the page records, after the load event, how many images failed to decode and how many
error events fired, and writes that into document.title (read back with --dump-dom); console messages
are read from Chromium's log. A deliberately broken image proves the probe notices. Needs the
`chromium` binary (Debian package `chromium`); skipped when there is none.
"""

import json
import re
import shutil
import subprocess

import pytest

from dlprobe.report import build_report

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium binary on PATH (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars"]
# first thing in <head>: collect every error event (script errors, and image load errors, which only capture sees)
PROBE_HEAD = ("<script>window.__errors=[];window.addEventListener('error',function(e){"
              "__errors.push(String(e.message||(e.target&&e.target.tagName)))},true);</script>")
# last thing in <body>: after load, count images that did not decode
PROBE_TAIL = ("<script>window.addEventListener('load',function(){var im=Array.from(document.images);"
              "document.title='images='+im.length+' broken='+im.filter(function(i){return !i.complete||i.naturalWidth===0}).length"
              "+' errors='+__errors.length;});</script>")


# a user model's layer table (models/describe.py) with a hostile layer name: shown escaped, as text
LAYER_TABLE = {"rows": [{"layer": "<img src=x onerror=alert(1)>", "type": "Conv2d", "output_shape": [4, 8, 8], "params": 40, "trainable": 40},
                        {"layer": "6", "type": "Linear", "output_shape": [10], "params": 650, "trainable": 650}],
               "total": 690, "trainable": 690, "input_shape": [1, 8, 8], "output_shape": [10], "training": "loop", "source": "user",
               "model": "models.py:make_cnn"}


def png(width: int, height: int) -> bytes:
    """A real PNG figure (matplotlib, Agg) of the given size in pixels."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    ax.plot([0, 1, 2], [1, 0.3, 0.1], label="train loss")
    ax.set(title="A test figure", xlabel="epoch", ylabel="loss")
    ax.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report from one hand-written run of fit-function (hostile strings, a note, a failure) and one other."""
    root = tmp_path_factory.mktemp("runs")
    figure = png(640, 400)
    for experiment, summary, config in (
        ("fit-function", {"dataset_note": "<b>subset</b>", "models": [{"status": "diverged at step 3"}]}, {"functions": ["<script>alert(1)</script>"]}),
        ("my-probe", {"accuracy": 0.9, "layer_tables": {"model": LAYER_TABLE}}, {"width": 8}),
    ):
        run_dir = root / experiment / "quick_00000000"
        (run_dir / "figures").mkdir(parents=True)
        record = {"experiment": experiment, "profile": "quick", "config": config, "seeds": [0], "device": "cpu",
                  "dlprobe_version": "0.1.0", "torch_version": "2.x"}
        (run_dir / "config.json").write_text(json.dumps(record))
        (run_dir / "summary.json").write_text(json.dumps(summary))
        (run_dir / "run_info.json").write_text(json.dumps({"wall_time_s": 3.0, "finished_at": "2030-01-01T00:00:00+0000"}))
        (run_dir / "figures" / "loss_a.png").write_bytes(figure)
        (run_dir / "figures" / "accuracy_b.png").write_bytes(figure)
        (run_dir / "DONE").write_text("done\n")
    return build_report([root], tmp_path_factory.mktemp("report"))


def chromium(tmp_path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [BROWSER, *FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def load_status(tmp_path, html: str) -> tuple[dict, list[str]]:
    """({'images', 'broken', 'errors'}, console lines) for a page given as text, loaded from a file:// URL."""
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1), encoding="utf-8")
    result = chromium(tmp_path, probe.as_uri(), "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", "--dump-dom")
    title = re.search(r"<title>images=(\d+) broken=(\d+) errors=(\d+)</title>", result.stdout)
    assert title, f"the probe did not run; chromium said: {result.stderr[-2000:]}"
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return dict(zip(("images", "broken", "errors"), map(int, title.groups()))), console


def test_report_loads_cleanly_in_chromium(report, tmp_path):
    status, console = load_status(tmp_path, report.read_text(encoding="utf-8"))
    assert status == {"images": 4, "broken": 0, "errors": 0}
    assert console == []
    screenshot = tmp_path / "report.png"
    result = chromium(tmp_path, report.as_uri(), f"--screenshot={screenshot}", "--window-size=1280,2400")
    assert screenshot.is_file(), result.stderr[-2000:]
    header = screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(header[16:20], "big") == 1280


def test_probe_notices_a_broken_image_and_a_console_error(report, tmp_path):
    html = report.read_text(encoding="utf-8")
    broken = re.sub(r"data:image/png;base64,[A-Za-z0-9+/]{40}", "data:image/png;base64,AAAA", html, count=1)
    assert broken != html
    broken = broken.replace("</main>", "<script>console.error('deliberate')</script></main>", 1)
    status, console = load_status(tmp_path, broken)
    assert status["images"] == 4 and status["broken"] == 1 and status["errors"] == 1
    assert any("deliberate" in line for line in console)


def test_layer_table_shows_in_chromium(report, tmp_path):
    """The Models table next to the settings, as the browser lays it out (DOM after load), the hostile name as text."""
    result = chromium(tmp_path, report.as_uri(), "--virtual-time-budget=5000", "--dump-dom")
    dom = result.stdout
    assert "<h4>Models</h4>" in dom and "your model models.py:make_cnn, trained with the ordinary training loop" in dom
    assert "<td>(N, 4, 8, 8)</td>" in dom and "<td>total</td><td></td><td>690</td>" in dom
    assert "&lt;img src=x onerror=alert(1)&gt; (Conv2d)" in dom and "<img src=\"x\"" not in dom
