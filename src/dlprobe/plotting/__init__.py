"""Figures: functions take data and `ax=None` and return the Axes; nothing here reads or writes run files.

Importing this package selects matplotlib's non-interactive Agg backend (figures are files, no screen).
"""

import matplotlib

matplotlib.use("Agg")
