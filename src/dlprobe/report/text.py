"""Turning run-directory values into short display strings (no markup: the renderers escape them).

    format_number(0.012345)      # '0.0123'  (3 significant digits; the report's and the benchmarks' one number format)
    format_number(3.2e-7, 2)     # '3.2e-07'
    format_value([0.5, None])    # '0.5, n/a'
"""

from __future__ import annotations

import json
import re


def format_number(value, digits: int = 3) -> str:
    """A number for prose and tables: `digits` significant digits, scientific when |value| < 1e-3 or >= 1e5;
    'n/a' for None and NaN."""
    if value is None:
        return "n/a"
    value = float(value)
    if value != value:
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def format_value(value) -> str:
    """A config value or table cell as text: floats by format_number, lists joined, None as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def format_config_value(value) -> str:
    """A config value exactly as configured: floats keep full precision (1e-3 stays 0.001, not rounded)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)) and value:
        return ", ".join(format_config_value(item) for item in value)
    return format_value(value)


def format_duration(seconds) -> str:
    """Wall time for people: '42.3 s', '3 min 05 s', '1 h 02 min'; 'n/a' when unknown."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds != seconds:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def caption_from_name(stem: str) -> str:
    """A figure caption from its file name: 'grad_norm_mnist-5k' -> 'Grad norm mnist-5k'."""
    words = " ".join(stem.replace("_", " ").split()) or stem
    return words[:1].upper() + words[1:]


def anchor(name: str) -> str:
    """An HTML id / file-name-safe token for an experiment name (letters, digits, hyphens only)."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"
