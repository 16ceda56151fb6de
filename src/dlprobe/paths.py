"""The one module that knows the file names inside a run directory.

    runs/<experiment>/<profile>_<config-hash>/
        config.json     fully resolved configuration + versions, device, seeds
        run_info.json   wall time, host, start/end (kept out of summary.json so that stays reproducible)
        metrics.csv     long format: run,step,name,value
        summary.json    headline numbers (documented per experiment)
        figures/*.png, figures/*.svg
        trials/*.pt     finished trials (reused on resume)
        checkpoints/*.pt  mid-training checkpoints of unfinished trials
        failed_trials.json  trials that failed on every attempt (Ray executor); removed when the run is done
        DONE            written last
        .lock           held while a process writes the directory
"""

from pathlib import Path

CONFIG = "config.json"
RUN_INFO = "run_info.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
FIGURES = "figures"
TRIALS = "trials"
CHECKPOINTS = "checkpoints"
FAILED_TRIALS = "failed_trials.json"
DONE = "DONE"
LOCK = ".lock"  # held (flock) while a process writes the run directory
DEFAULT_RUNS_ROOT = Path("runs")
DEFAULT_REPORT_DIR = Path("report")
# `dlprobe inspect --out DIR` (inspection/command.py): the card and its numbers
INSPECT_CARD = "inspect.html"
INSPECT_JSON = "inspect.json"
DEFAULT_INSPECT_DIR = Path("inspect")


def run_directory(root: Path, experiment: str, profile: str, config_hash: str) -> Path:
    return Path(root) / experiment / f"{profile}_{config_hash}"
