"""Run directories on disk: atomic writes, the DONE marker, checkpoints, resumption.

Every file is written to a temporary name in the same directory and renamed into place, so a run killed
at any moment leaves either the old file or the new one, never half of one. `DONE` is written last; a
directory without it is an unfinished run that the next invocation resumes (finished trials are kept in
`trials/` and reused). Checkpoints are plain state dicts, loaded with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from . import paths
from .errors import RunDirError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, NaN/inf written as null so the file stays standard JSON."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _clean(obj.item())
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"cannot read {path}: {error}; delete the run directory or rerun with --fresh") from None


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: Path) -> Any:
    """torch.load with weights_only=True (no code from the file runs); damage is a RunDirError."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise RunDirError(
            f"cannot load checkpoint {path}: not a checkpoint written by dlprobe (damaged, or it holds objects other "
            "than tensors and plain data); rerun with --fresh to start over"
        ) from None
    except Exception as error:  # torch raises many types for a damaged file
        raise RunDirError(f"cannot load checkpoint {path}: {type(error).__name__}; rerun with --fresh to start over") from None


class RunDir:
    """One experiment run's directory; the file names come from `paths`.

    `config_hash` ties trial files to the configuration that wrote them: a trial from another run (copied
    in, or left by a different config) is refused instead of silently reused."""

    def __init__(self, root: Path, config_hash: str | None = None):
        self.root = Path(root)
        self.config_hash = config_hash

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock on the directory: a second process running the same run fails at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / paths.LOCK, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(f"{self.root} is being written by another dlprobe process; wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files a killed process left behind (they are never read); returns how many."""
        stale = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in stale:
            path.unlink()
        return len(stale)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def figures(self) -> Path:
        return self.root / paths.FIGURES

    def is_done(self) -> bool:
        return (self.root / paths.DONE).exists()

    def mark_done(self) -> None:
        atomic_write_text(self.root / paths.DONE, "done\n")

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.root / name, obj)

    def read_json(self, name: str) -> Any:
        return read_json(self.root / name)

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.root / name, text)

    def trial_path(self, key: str) -> Path:
        return self.root / paths.TRIALS / f"{key}.pt"

    def checkpoint_path(self, key: str) -> Path:
        return self.root / paths.CHECKPOINTS / f"{key}.pt"

    def trial(self, key: str, compute):
        """The result of trial `key`: loaded if a previous invocation finished it, else computed and saved.

        Results must be checkpoint-safe (tensors, numbers, strings, lists, dicts), since they are loaded
        with weights_only=True. The trial's own mid-training checkpoint is removed once it is done.
        """
        path = self.trial_path(key)
        if path.exists():
            saved = load_checkpoint(path)
            if not (isinstance(saved, dict) and saved.get("key") == key and saved.get("config_hash") == self.config_hash and "result" in saved):
                raise RunDirError(f"{path} was not written by this run (another trial or configuration); rerun with --fresh")
            return saved["result"]
        result = compute()
        atomic_torch_save({"key": key, "config_hash": self.config_hash, "result": result}, path)
        checkpoint = self.checkpoint_path(key)
        if checkpoint.exists():
            checkpoint.unlink()
        return result

    def save_figure(self, figure, name: str) -> list[Path]:
        """Write figures/<name>.png and .svg atomically; returns both paths."""
        import io

        written = []
        for extension in ("png", "svg"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=extension, dpi=120, bbox_inches="tight")
            target = self.figures / f"{name}.{extension}"
            atomic_write_bytes(target, buffer.getvalue())
            written.append(target)
        return written
