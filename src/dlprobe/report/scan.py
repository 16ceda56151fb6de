"""Finding finished run directories on disk, and the things in a summary the reader must not miss.

    runs/<experiment>/<profile>_<hash>/DONE     a finished run (only these are reported)

Several finished runs of one experiment (other profiles or settings) are all kept, newest first by
run_info.json `finished_at`; the report shows the newest and lists the others.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .. import paths
from ..errors import RunDirError

OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def finished_at(run_dir: Path) -> datetime:
    """When the run finished: run_info.json `finished_at`, else the DONE file's time (damaged info)."""
    try:
        info = json.loads((Path(run_dir) / paths.RUN_INFO).read_text(encoding="utf-8"))
        return datetime.strptime(info["finished_at"], "%Y-%m-%dT%H:%M:%S%z")
    except (OSError, ValueError, KeyError, TypeError):
        done = Path(run_dir) / paths.DONE
        return datetime.fromtimestamp(done.stat().st_mtime, timezone.utc) if done.exists() else OLDEST


def newest_first(run_dirs: list[Path]) -> list[Path]:
    """Run directories grouped by experiment (first appearance order), newest first within each."""
    groups: dict[str, list[Path]] = {}
    for run_dir in run_dirs:
        groups.setdefault(Path(run_dir).parent.name, []).append(Path(run_dir))
    ordered = []
    for group in groups.values():
        ordered.extend(sorted(group, key=finished_at, reverse=True))
    return ordered


def find_run_dirs(runs_root: Path) -> list[Path]:
    """Every finished run directory (has DONE) under runs_root/<experiment>/<profile>_<hash>/.

    Ordered by experiment name, newest first within an experiment. Raises RunDirError when the root
    does not exist or holds no finished run, since an empty report would only list what is missing.
    """
    root = Path(runs_root)
    if not root.is_dir():
        raise RunDirError(f"no run directories: {root} does not exist; run an experiment first (`dlprobe run NAME`) or pass --runs DIR")
    found = sorted(done.parent for done in root.glob(f"*/*/{paths.DONE}") if done.is_file())
    if not found:
        raise RunDirError(f"no finished run under {root} (a finished run directory {root}/<experiment>/<profile>_<hash>/ holds a DONE file)")
    return newest_first(found)


def expand_run_dirs(given: list[Path]) -> list[Path]:
    """The finished run directories named by `given`: run directories themselves, or roots that hold them."""
    run_dirs: list[Path] = []
    for path in map(Path, given):
        if (path / paths.DONE).is_file():
            run_dirs.append(path)
        elif (path / paths.CONFIG).is_file():
            raise RunDirError(f"{path} is an unfinished run (no {paths.DONE} file); finish it with the same `dlprobe run` command first")
        elif path.is_dir():
            run_dirs.extend(find_run_dirs(path))
        else:
            raise RunDirError(f"{path} is not a run directory (no such directory)")
    seen, unique = set(), []
    for run_dir in run_dirs:  # one entry per directory, as first spelled
        if run_dir.resolve() not in seen:
            seen.add(run_dir.resolve())
            unique.append(run_dir)
    return newest_first(unique)


def find_keys(tree, key: str, where: str = "") -> list[tuple[str, object]]:
    """Every (dotted path, value) for dict keys named `key`, at any depth of a JSON tree."""
    found = []
    if isinstance(tree, dict):
        for name, value in tree.items():
            path = f"{where}.{name}" if where else str(name)
            if name == key:
                found.append((path, value))
            found.extend(find_keys(value, key, path))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.extend(find_keys(value, key, f"{where}[{index}]"))
    return found


def dataset_notes(summary) -> list[tuple[str, str]]:
    """(where, note) for every non-empty `dataset_note` in a summary, e.g. 'mnist-5k is a 5000-image subset'."""
    return [(where, str(value)) for where, value in find_keys(summary, "dataset_note") if isinstance(value, str) and value.strip()]


def diverged(summary) -> list[tuple[str, str]]:
    """(where, status) for every `status` value (a string or a list of per-seed strings) starting 'diverged'."""
    failures = []
    for where, value in find_keys(summary, "status"):
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, str) and item.startswith("diverged"):
                failures.append((where if index is None else f"{where}[{index}]", item))
    return failures
