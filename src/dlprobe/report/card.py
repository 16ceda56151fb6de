"""The `dlprobe inspect` card: one self-contained HTML page (the report's style sheet inline, figures as base64 PNG
data URIs, no scripts, nothing fetched) from inspect.json's record and the figures' PNG bytes.

    html = render_card(record, {"spectrum": png, "density": png, "line": png, "surface": png})

Every string from the record (the model's text, path and docstring, the dataset's note, layer names, settings)
goes through `escape`; numbers through `format_number`.
"""

from __future__ import annotations

import base64

from ..models.describe import shape_text
from .html import escape
from .text import format_duration, format_number, format_value
from .theme import CSS

CAPTIONS = {
    "spectrum": "Largest and smallest Hessian eigenvalues (Lanczos) of the training loss on the training subset.",
    "density": "Spectral density of the Hessian (stochastic Lanczos quadrature), log scale.",
    "line": "1-D loss landscape: training loss and accuracy at theta + alpha d1, d1 a filter-normalized random direction.",
    "surface": "2-D loss landscape: training loss on the plane theta + a d1 + b d2 (filter-normalized directions; + the model).",
}


def _number(value) -> str:
    return format_number(value, 4)


def _eigenvalues(hessian: dict, end: str) -> str:
    values = ", ".join(map(_number, hessian[f"{end}_eigenvalues"])) or "none"
    converged = hessian.get("converged", {})
    if converged.get(end, True):
        return values
    return f"{values} (not converged within {converged.get('max_restarts')} Lanczos restarts: the Ritz values that had)"


def _rows(record: dict) -> list[tuple[str, str]]:
    """(what, value) of every measurement, as the card's table shows them."""
    evaluation, hessian, sharp, sensitivity = record["evaluation"], record["hessian"], record["sharpness"], record["sensitivity"]
    trace = hessian["trace"]
    split = {name: f"{_number(e['loss'])} / {_number(e['accuracy'])} ({e['examples']} examples)" for name, e in evaluation.items()}
    return [
        ("training loss / accuracy", split["train"]),
        ("test loss / accuracy", split["test"]),
        ("largest Hessian eigenvalues", _eigenvalues(hessian, "top")),
        ("smallest Hessian eigenvalues", _eigenvalues(hessian, "bottom")),
        ("Hessian trace (Hutchinson)", f"{_number(trace['estimate'])} ± {format_number(trace['standard_error'], 2)} "
                                       f"(standard error, {trace['probes']} probes)"),
        ("Hessian of", f"{hessian['num_params']:,} parameters, the mean loss over {hessian['examples']} training examples "
                       f"(loss {_number(hessian['loss'])})"),
        ("ε-sharpness (Keskar)", f"{_number(sharp['percent'])} % (ε = {format_number(sharp['epsilon'])}, {sharp['steps']} ascent "
                                 f"steps; loss {_number(sharp['loss'])} -> {_number(sharp['loss_at_maximum'])})"),
        ("input-gradient sensitivity", f"{_number(sensitivity['input_gradient'])} (mean over {sensitivity['examples']} test "
                                       "examples of ||d loss_n / d x_n||)"),
        ("Jacobian sensitivity (Novak et al.)", f"{_number(sensitivity['jacobian'])} (mean of ||d softmax(f(x_n)) / d x_n||_F)"),
    ]


def _source(record: dict) -> list[tuple[str, str]]:
    model, checkpoint, dataset = record["model"], record.get("checkpoint"), record["dataset"]
    if checkpoint is None:
        weights = f"no checkpoint: the factory's freshly initialised weights (seed {record['settings']['seed']})"
    else:
        trained = ", ".join(f"{k} {checkpoint[k]}" for k in ("epoch", "step") if k in checkpoint)
        weights = (f"{checkpoint['path']} ({'a dlprobe checkpoint' if checkpoint['format'] == 'dlprobe' else 'a state dict'}, "
                   f"{checkpoint['tensors']} tensors{', ' + trained if trained else ''}; sha256 {checkpoint['sha256'][:12]})")
    return [("model", f"{model['model']} ({model['file']}, sha256 {model['sha256'][:12]})"),
            ("factory arguments", format_value(model["arguments"])), ("weights", weights),
            ("dataset", f"{dataset['name']}: {dataset['num_train']} train / {dataset['num_test']} test, {dataset['num_classes']} classes, "
                        f"input {shape_text(dataset['input_shape'])}, normalize {dataset['normalize']}"
                        + (f" ({dataset['note']})" if dataset.get("note") else "")),
            ("device", record.get("device", "n/a")),
            ("versions", f"dlprobe {record.get('dlprobe_version', 'n/a')}, torch {record.get('torch_version', 'n/a')}"),
            ("wall time", format_duration(record.get("wall_time_s")))]


def _key_values(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>"


def _layer_table(table: dict) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ("layer (type)", "output shape", "parameters"))
    body = "".join(f"<tr><td>{escape(row['layer'])} ({escape(row['type'])})</td><td>{escape(shape_text(row['output_shape']))}</td>"
                   f"<td>{row['params']:,}</td></tr>" for row in table["rows"])
    frozen = table["total"] - table["trainable"]
    frozen_text = f", {frozen:,} frozen" if frozen else ""
    foot = f"<tr><td>total ({table['trainable']:,} trainable{frozen_text})</td><td></td><td>{table['total']:,}</td></tr>"
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f"<tfoot>{foot}</tfoot></table></div>")


def _figures(figures: dict[str, bytes]) -> str:
    items = []
    for name, data in figures.items():
        caption = CAPTIONS.get(name, name)
        encoded = base64.b64encode(data).decode("ascii")
        items.append(f'<figure><img src="data:image/png;base64,{encoded}" alt="{escape(caption)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    return f'<div class="figures">{"".join(items)}</div>'


def render_card(record: dict, figures: dict[str, bytes]) -> str:
    """The card as text (see the module docstring)."""
    model = record["model"]
    settings = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(format_value(v))}</dd></div>" for k, v in record["settings"].items())
    doc = f'<p class="description">{escape(model["docstring"])}</p>' if model.get("docstring") else ""
    landscape = record["landscape"]
    bn = "kept (the model's own)" if landscape["bn"] == "keep" else "recomputed on the training subset at every point"
    body = [
        f"<h1>{escape(model['model'])}</h1>", doc,
        '<p class="meta">dlprobe inspect: one trained model, measured in eval mode (dropout off, BatchNorm with its running '
        "statistics) with the cross-entropy loss.</p>",
        _key_values(_source(record)),
        "<h2>Measurements</h2>", _key_values(_rows(record)),
        f'<p class="meta">Landscapes: {escape(landscape["directions"])}; BatchNorm statistics {escape(bn)}.</p>',
        _figures(figures),
        "<h2>Layers</h2>", _layer_table(record["layer_table"]),
        "<h2>Settings</h2>", f'<dl class="settings">{settings}</dl>',
    ]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>dlprobe inspect: {escape(model['model'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
