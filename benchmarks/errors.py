"""The one exception a case raises on purpose: an optional baseline is not installed."""


class SkipCase(Exception):
    """The case cannot run here (e.g. PyHessian missing); the message says why and how to enable it."""
