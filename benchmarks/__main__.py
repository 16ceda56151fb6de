"""`python -m benchmarks`: run the cases, print a table, write results.json.

    python -m benchmarks [--case 1,2,4] [--smoke] [--repeats N] [--runs N] [--suite-profile quick|full]
                         [--out benchmarks/results.json]

results.json: {"machine": {cpu_model, cpu_cores, load_average_1_5_15min, torch_version, numpy_version, ...,
date}, "smoke": bool, "command": [...], "cases": {"<n>": record}}. A record (common.case_record) holds
name, threads, settings, dlprobe {label, times_s, median_s, rate?}, baselines [{label, times_s, median_s,
ratio, target, met}], equality {what, error, tolerance, ok, ...}, met (every target and the check),
measured_at, machine, and case-specific extras; a skipped case holds {"case", "name", "skipped": reason}.
Cases not run this time keep their earlier record (each with its own measured_at) when the file exists
and was written in the same mode (smoke or not).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import torch

from dlprobe.report.text import format_value

from . import critical_points, dense_hessian, ensemble_training, interpolation, library_api, suite, top_eigenvalues
from .common import machine_record
from .errors import SkipCase

CASES = {1: ensemble_training, 2: dense_hessian, 3: top_eigenvalues, 4: interpolation, 5: critical_points, 6: suite,
         7: library_api.CASE_7, 8: library_api.CASE_8, 9: library_api.CASE_9, 10: library_api.CASE_10}
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def parse_cases(text: str) -> list[int]:
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"benchmarks: error: --case expects numbers like 1,2,4, got {text!r}") from None
    unknown = [c for c in chosen if c not in CASES]
    if unknown or not chosen:
        raise SystemExit(f"benchmarks: error: unknown case(s) {unknown or text!r}; choose from {', '.join(map(str, CASES))}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="dlprobe performance benchmarks (see benchmarks/README.md)")
    parser.add_argument("--case", default=",".join(map(str, CASES)), help="comma-separated cases (default: all): "
                        + "; ".join(f"{n} {m.NAME}" for n, m in CASES.items()))
    parser.add_argument("--smoke", action="store_true", help="toy sizes, seconds: checks that every case runs, not speed")
    parser.add_argument("--repeats", type=int, help="interleaved repetitions per case (default: per case, 1 in smoke)")
    parser.add_argument("--runs", type=int, help="case 5: training runs on both sides (default: 100, the full profile; smoke: 1)")
    parser.add_argument("--suite-profile", choices=("smoke", "quick", "full"), default="quick",
                        help="case 6: profile of `dlprobe run all` (default quick; full on mnist-5k takes hours)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default: {DEFAULT_OUT})")
    return parser


def run_case(number: int, args) -> dict:
    module = CASES[number]
    options = {"smoke": args.smoke, "repeats": args.repeats}
    if number == 5:
        options["runs"] = args.runs
    if number == 6:
        options["profile"] = args.suite_profile
    try:
        record = module.run(**options)
    except SkipCase as reason:
        print(f"case {number} skipped: {reason}", file=sys.stderr)
        return {"case": number, "name": module.NAME, "skipped": str(reason)}
    except Exception as error:  # report and go on with the other cases; the exit code says it failed
        traceback.print_exc()
        return {"case": number, "name": module.NAME, "error": f"{type(error).__name__}: {error}"}
    record["machine"] = machine_record()
    return record


def _cell(value) -> str:
    """A table cell as the report writes values (report.text.format_value); '-' when missing and a loud 'NO'
    for a failed target or check, so they stand out in a column of 'yes'."""
    if value is None:
        return "-"
    if value is False:
        return "NO"
    return format_value(value)


def table(records: list[dict]) -> str:
    """One row per (case, baseline): times (for the same work on both sides), ratio, target, met, equality check."""
    header = ["case", "dlprobe s", "baseline", "baseline s", "ratio", "target", "met", "check error", "tol", "ok"]
    rows = []
    for record in records:
        if "baselines" not in record:
            rows.append([str(record["case"]), "-", record.get("skipped") or record.get("error", "-"), *["-"] * 7])
            continue
        check = record["equality"]
        for b in record["baselines"]:
            ours = b.get("dlprobe_median_s", record["dlprobe"]["median_s"])  # a secondary row has its own dlprobe time
            rows.append([str(record["case"]), _cell(ours), b["label"][:46], _cell(b.get("median_s_for_all_models", b["median_s"])),
                         "-" if b.get("ratio") is None else _cell(b["ratio"]) + "x",
                         "-" if b.get("target") is None else f">={_cell(b['target'])}x", _cell(b["met"]),
                         _cell(check["error"]), _cell(check["tolerance"]), _cell(check["ok"])])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def write_results(path: Path, records: list[dict], smoke: bool, argv: list[str]) -> None:
    cases = {}
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
            if earlier.get("smoke") == smoke:
                cases = earlier.get("cases", {})
        except (OSError, ValueError):
            cases = {}
    cases.update({str(r["case"]): r for r in records})
    data = {"machine": machine_record(), "smoke": smoke, "command": ["python", "-m", "benchmarks", *argv],
            "cases": dict(sorted(cases.items(), key=lambda item: int(item[0])))}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    chosen = parse_cases(args.case)
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit("benchmarks: error: --repeats must be >= 1")
    if args.runs is not None and args.runs < 1:
        raise SystemExit("benchmarks: error: --runs must be >= 1")
    # One torch thread, as dlprobe's CLI does by default, and subnormals flushed to zero as its runner does
    # (both sides of every comparison run under the same settings).
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    records = []
    for number in chosen:
        print(f"case {number}: {CASES[number].NAME} ...", file=sys.stderr, flush=True)
        records.append(run_case(number, args))
        write_results(args.out, records, args.smoke, argv)  # after every case: a long run keeps what it measured
    print(table(records))
    for record in records:
        for note in record.get("notes", []):
            print(f"case {record['case']}: {note}")
    print(f"results: {args.out}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
