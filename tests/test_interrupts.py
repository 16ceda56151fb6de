"""interrupts_deferred: a SIGINT inside the block is held back and raised once the block is done."""

import os
import signal
import threading

import pytest

from dlprobe.interrupts import interrupts_deferred


def test_an_interrupt_inside_the_block_is_raised_after_it_completes():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)  # delivered now, while the block runs
            finished.append("the rest of the block ran")
    assert finished == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_no_interrupt_no_exception_and_the_handler_is_restored():
    with interrupts_deferred():
        value = 1 + 1
    assert value == 2 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_the_block_runs_unchanged():
    seen = []

    def work():
        with interrupts_deferred():  # signal.signal would raise ValueError in this thread
            seen.append(threading.current_thread() is threading.main_thread())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [False]
