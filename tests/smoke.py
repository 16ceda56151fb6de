"""Shared checks for the experiment tests (imported as `smoke`: tests/ is on sys.path under pytest)."""

from pathlib import Path

from dlprobe.cli import main


def run_smoke(name: str, out: Path, *extra: str) -> Path:
    """`dlprobe run NAME --profile smoke --out OUT --quiet EXTRA...` exits 0 and finishes one run directory
    (DONE written); returns that directory."""
    assert main(["run", name, "--profile", "smoke", "--out", str(out), "--quiet", *extra]) == 0
    (done,) = list(Path(out).rglob("DONE"))
    return done.parent


def assert_rerun_is_skipped(argv: list[str], run_dir: Path) -> None:
    """Running `argv` again finds DONE and rewrites nothing: summary.json keeps its bytes and its mtime."""
    summary = run_dir / "summary.json"
    before, stamp = summary.read_bytes(), summary.stat().st_mtime_ns
    assert main(argv) == 0
    assert (run_dir / "DONE").exists()
    assert summary.read_bytes() == before
    assert summary.stat().st_mtime_ns == stamp
