"""The layer tables of a run's models (summary.json's layer_tables, models/describe.py), for the report's settings.

    for heading, columns, rows, footer in model_tables(summary): ...
    # heading: "model: models.py:make_cnn (your model; the ordinary training loop): 846 parameters, 846 trainable"
    # columns: layer (type), output shape, parameters; footer: the totals row

A summary without layer_tables (an older run) gives no tables; a damaged entry is skipped with a heading that says so.
"""

from __future__ import annotations

from ..models.describe import shape_text

COLUMNS = ["layer (type)", "output shape", "parameters"]
TRAINING = {"ensemble": "dlprobe's MLP ensemble trainer (all seeds at once)", "loop": "the ordinary training loop"}


def model_tables(summary: dict) -> list[tuple[str, list[str], list[list], list]]:
    """(heading, columns, rows, footer) per described model, in the order the run described them."""
    tables = summary.get("layer_tables") if isinstance(summary, dict) else None
    if not isinstance(tables, dict):
        return []
    result = []
    for name, entry in tables.items():
        try:
            rows = [[f"{row['layer']} ({row['type']})", shape_text(row["output_shape"]), f"{row['params']:,}"] for row in entry["rows"]]
            source = f"your model {entry['model']}" if entry.get("source") == "user" else "dlprobe's model"
            training = TRAINING.get(entry.get("training"), str(entry.get("training")))
            frozen = entry["total"] - entry["trainable"]
            heading = (f"{name}: {source}, trained with {training}; input {shape_text(entry['input_shape'])}: "
                       f"{entry['total']:,} parameters, {entry['trainable']:,} trainable" + (f", {frozen:,} frozen" if frozen else ""))
            footer = ["total", "", f"{entry['total']:,}"]
        except (KeyError, TypeError, ValueError):
            result.append((f"{name}: the layer table in summary.json is damaged", COLUMNS, [], []))
            continue
        result.append((heading, COLUMNS, rows, footer))
    return result
