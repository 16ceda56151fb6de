"""Ctrl-C while heavy libraries load: remembered, then raised once the imports are complete.

    with interrupts_deferred():
        import torch                   # a SIGINT here is held back ...
    # ... and raised as KeyboardInterrupt here, with torch fully imported

Why: a KeyboardInterrupt raised inside a module import can be swallowed by library code (a bare `except:`
around an optional import), which leaves the library half-initialised and the command running on: seen here
as `RecursionError` in numpy's module `__getattr__` and `ImportError: cannot load module more than once per
process`, each with a long traceback, in about one start-up interrupt out of five. Holding the interrupt
until the imports finish turns every such case into the ordinary one-line "interrupted" exit (code 130).
Only the main thread can set signal handlers; elsewhere the block runs unchanged.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def interrupts_deferred():
    """Run the block with SIGINT recorded instead of raised; raise KeyboardInterrupt after it if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
