"""Figures: functions take data and `ax=None` and return the Axes; nothing here reads or writes run files.

Importing this package selects matplotlib's non-interactive Agg backend (figures are files, no screen), unless
pyplot is already imported: then the caller has chosen a backend (a notebook's inline one, say) and keeps it.
"""

import sys

import matplotlib

if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
