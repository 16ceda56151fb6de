"""File-name-safe names for run files and trial keys (statistics live in analysis/stats.py)."""

from __future__ import annotations

import hashlib
import re


def slug(text: str) -> str:
    """A file-name-safe name; expressions get a short hash so different ones never collide."""
    clean = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if clean == text:
        return clean
    return f"{clean[:24]}-{hashlib.sha256(text.encode()).hexdigest()[:6]}".strip("-")
