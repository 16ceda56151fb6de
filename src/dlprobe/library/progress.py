"""Progress bars for long library calls: tqdm when asked for (or on a terminal), else a no-op with the same use."""

from __future__ import annotations


class _Silent:
    def update(self, count: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def progress_bar(enabled: bool | None, total: int | None, description: str):
    """A context manager with update(n): a tqdm bar (enabled True; None: only when stderr is a terminal), or silent."""
    if enabled is False or not description:
        return _Silent()
    from tqdm.auto import tqdm  # imported here: `import dlprobe` stays cheap

    return tqdm(total=total, desc=description, disable=None if enabled is None else False, leave=False)
