"""Fingerprint every number a profile produces, to prove a refactoring changed none of them.

    python tools/fingerprint_numbers.py record --profile smoke --profile quick --out /tmp/before.json
    ... change the code ...
    python tools/fingerprint_numbers.py record --profile smoke --profile quick --out /tmp/after.json
    python tools/fingerprint_numbers.py compare /tmp/before.json /tmp/after.json
    python tools/fingerprint_numbers.py record --profile smoke --experiment sensitivity --experiment interpolation --out F

`record` runs `dlprobe run all --profile P --threads 1` (or, with --experiment, `dlprobe run NAME` for each
NAME and then `dlprobe report` of those runs) into a fresh temporary runs directory per profile
(nothing reused) with `python -m dlprobe` (so PYTHONPATH=OTHER_CHECKOUT/src fingerprints another checkout's
code with the same interpreter), then stores the sha256 of every run's summary.json and metrics.csv, keyed by
experiment/profile/file, and of the report's report.md with its wall-time and environment lines removed.
`compare` prints one line per key (same / DIFFERENT / only in one) and exits 1 when anything differs; for a
differing summary.json or metrics.csv it also prints the largest relative difference between numbers at the
same place (kept copies of both files), so a change in the 7th digit reads as such.
Run directory names (config hashes) are not part of the key, so a change that renames a directory but
keeps its numbers compares equal; the names are recorded too and listed when they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = ("summary.json", "metrics.csv")
NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-?inf|nan", re.I)
# report lines that differ between two identical runs: measured wall times (the per-experiment table, "wall
# time" lines), dates and timestamps, the temporary run-directory paths, host, versions
VOLATILE = re.compile(r"(wall time|\d s \||\d min \d\d s|\d{4}-\d\d-\d\dT\d\d:|generated|host|platform|python|"
                      r"torch|peak|dlprobe \d|fingerprint-)", re.I)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_lines(report_text: str) -> str:
    """report.md without the lines that change from one identical run to the next."""
    return "\n".join(line for line in report_text.splitlines() if not VOLATILE.search(line))


def record(profiles: list[str], out: Path, experiments: list[str] | None = None) -> None:
    result: dict = {"profiles": profiles, "experiments": experiments or ["all"], "files": {}, "run_dirs": {}, "wall_s": {}}
    copies = out.with_suffix(".summaries")  # the summary.json files themselves, for a key-level diff
    shutil.rmtree(copies, ignore_errors=True)
    for profile in profiles:
        with tempfile.TemporaryDirectory(prefix=f"fingerprint-{profile}-") as tmp:
            runs, report = Path(tmp) / "runs", Path(tmp) / "report"
            started = time.time()
            dlprobe = [sys.executable, "-m", "dlprobe"]
            for name in experiments or ["all"]:
                subprocess.run([*dlprobe, "run", name, "--profile", profile, "--threads", "1", "--quiet", "--out", str(runs),
                                "--report-dir", str(report)], check=True)
            if experiments:
                subprocess.run([*dlprobe, "report", "--runs", str(runs), "--out", str(report)], check=True, stdout=subprocess.DEVNULL)
            result["wall_s"][profile] = round(time.time() - started, 1)
            for run_dir in sorted(p.parent for p in runs.glob("*/*/DONE")):
                experiment = run_dir.parent.name
                result["run_dirs"][f"{experiment}/{profile}"] = run_dir.name
                for name in FILES:
                    result["files"][f"{experiment}/{profile}/{name}"] = _sha((run_dir / name).read_bytes())
                (copies / profile).mkdir(parents=True, exist_ok=True)
                shutil.copy(run_dir / "summary.json", copies / profile / f"{experiment}.json")
                shutil.copy(run_dir / "metrics.csv", copies / profile / f"{experiment}.metrics.csv")
            text = (report / "report.md").read_text(encoding="utf-8")
            (copies / profile).mkdir(parents=True, exist_ok=True)
            (copies / profile / "report.md").write_text(text, encoding="utf-8")
            result["files"][f"report/{profile}/report.md (stable lines)"] = _sha(stable_lines(text).encode())
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{len(result['files'])} fingerprints -> {out}")


def _flatten(value, prefix=""):
    """{dotted key: leaf value} of a JSON value."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def _summary_diff(before_path: Path, after_path: Path, key: str) -> list[str]:
    """Lines naming the summary.json keys added, removed or changed (when both copies were kept)."""
    experiment, profile, _ = key.split("/")
    paths = [p.with_suffix(".summaries") / profile / f"{experiment}.json" for p in (before_path, after_path)]
    if not all(p.exists() for p in paths):
        return []
    a, b = (_flatten(json.loads(p.read_text())) for p in paths)
    lines = [f"    added   {k} = {b[k]!r}"[:160] for k in sorted(set(b) - set(a))]
    lines += [f"    removed {k}"[:160] for k in sorted(set(a) - set(b))]
    lines += [f"    changed {k}: {a[k]!r} -> {b[k]!r}"[:160] for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return lines or ["    same keys and values (formatting or order differs)"]


def _numeric_diff(before_path: Path, after_path: Path, key: str) -> list[str]:
    """The largest relative difference |a - b| / max(|a|, |b|) between the numbers at the same place of the two kept
    copies of a summary.json or metrics.csv (numbers read in text order), and how many numbers differ."""
    experiment, profile, name = key.split("/")
    suffix = ".json" if name == "summary.json" else ".metrics.csv"
    paths = [p.with_suffix(".summaries") / profile / f"{experiment}{suffix}" for p in (before_path, after_path)]
    if not all(p.exists() for p in paths):
        return []
    a, b = ([float(n) for n in NUMBER.findall(p.read_text())] for p in paths)
    if len(a) != len(b):
        return [f"    numbers: {len(a)} before, {len(b)} after (not compared place by place)"]
    worst, where, count = 0.0, None, 0
    for index, (x, y) in enumerate(zip(a, b)):
        if x == y or (x != x and y != y):
            continue
        count += 1
        scale = max(abs(x), abs(y))
        relative = abs(x - y) / scale if scale > 0 else float("inf")
        if not relative <= worst:
            worst, where = relative, (x, y)
    if not count:
        return ["    numbers: all equal (formatting or order differs)"]
    return [f"    numbers: {count} of {len(a)} differ, largest relative difference {worst:.3g} ({where[0]!r} -> {where[1]!r})"]


def _report_diff(before_path: Path, after_path: Path, profile: str) -> list[str]:
    """The differing stable lines of two kept report.md copies (first 20)."""
    import difflib

    paths = [p.with_suffix(".summaries") / profile / "report.md" for p in (before_path, after_path)]
    if not all(p.exists() for p in paths):
        return []
    a, b = (stable_lines(p.read_text(encoding="utf-8")).splitlines() for p in paths)
    lines = [f"    {line}"[:200] for line in difflib.unified_diff(a, b, lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    return lines[:20]


def compare(before_path: Path, after_path: Path) -> int:
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    differing = 0
    # only the profiles both files recorded (a smoke-only check against a smoke+quick baseline)
    common = set(before["profiles"]) & set(after["profiles"])
    for record_ in (before, after):
        record_["files"] = {k: v for k, v in record_["files"].items() if k.split("/")[1].split(" ")[0] in common}
        record_["run_dirs"] = {k: v for k, v in record_["run_dirs"].items() if k.split("/")[1] in common}
    print(f"profiles compared: {', '.join(sorted(common)) or 'none'}")
    for key in sorted(set(before["files"]) | set(after["files"])):
        a, b = before["files"].get(key), after["files"].get(key)
        state = "same" if a == b else ("only before" if b is None else "only after" if a is None else "DIFFERENT")
        differing += state != "same"
        print(f"{state:11s} {key}")
        if state == "DIFFERENT" and key.endswith("summary.json"):
            print("\n".join(_summary_diff(before_path, after_path, key)))
        if state == "DIFFERENT" and key.endswith((".json", ".csv")) and not key.startswith("report/"):
            print("\n".join(_numeric_diff(before_path, after_path, key)))
        if state == "DIFFERENT" and key.startswith("report/"):
            print("\n".join(_report_diff(before_path, after_path, key.split("/")[1])))
    for key in sorted(set(before["run_dirs"]) | set(after["run_dirs"])):
        if before["run_dirs"].get(key) != after["run_dirs"].get(key):
            print(f"renamed     {key}: {before['run_dirs'].get(key)} -> {after['run_dirs'].get(key)}")
    total = len(set(before["files"]) | set(after["files"]))
    print(f"{total - differing} of {total} fingerprints identical")
    return 1 if differing or not common else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="run the profiles and store fingerprints")
    rec.add_argument("--profile", action="append", choices=("smoke", "quick", "full"), required=True)
    rec.add_argument("--experiment", action="append", metavar="NAME",
                     help="run only this experiment (repeatable; default: `run all`), then the report of those runs")
    rec.add_argument("--out", type=Path, required=True)
    cmp_ = commands.add_parser("compare", help="compare two fingerprint files")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.profile, args.out, args.experiment)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
