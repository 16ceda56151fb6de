"""A long-format metric log: rows of (run, step, name, value), the layout of every metrics.csv.

    log = MetricLog()
    log.add("0", step=120, name="train_loss", value=0.03)
    steps, values = log.series("train_loss", run="0")
"""

from __future__ import annotations

import csv
import io
import math


class MetricLog:
    def __init__(self, rows: list[tuple[str, int, str, float]] | None = None):
        self._rows = list(rows or [])

    def add(self, run: str, step: int, name: str, value: float) -> None:
        self._rows.append((str(run), int(step), str(name), float(value)))

    def rows(self) -> list[tuple[str, int, str, float]]:
        return list(self._rows)

    def series(self, name: str, run: str | None = None) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, in the order recorded."""
        pairs = [(s, v) for r, s, n, v in self._rows if n == name and (run is None or r == str(run))]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def last(self, name: str, run: str | None = None) -> float:
        _, values = self.series(name, run)
        return values[-1] if values else math.nan

    def state(self) -> list:
        """A checkpoint-safe form (lists of primitives load with weights_only=True)."""
        return [list(row) for row in self._rows]

    @classmethod
    def from_state(cls, state: list) -> "MetricLog":
        return cls([tuple(row) for row in state])

    def to_csv(self) -> str:
        """CSV text with header run,step,name,value; floats written with repr precision."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["run", "step", "name", "value"])
        for run, step, name, value in self._rows:
            writer.writerow([run, step, name, repr(value)])
        return buffer.getvalue()
