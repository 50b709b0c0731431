"""The collector pause: nested and threaded pauses restore the collector's earlier state."""

from __future__ import annotations

import gc
import threading

from deepscope.graph.gcpause import gc_paused


def test_nested_pauses_restore_the_collector_once_the_last_ends() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_threads_end_enabled() -> None:
    inside = threading.Barrier(2)
    leave = threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.wait()
            leave.wait()

    t = threading.Thread(target=hold)
    t.start()
    with gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the thread's pause is still open
    leave.set()
    t.join()
    assert gc.isenabled()


def test_an_exception_in_the_block_still_restores() -> None:
    try:
        with gc_paused():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.isenabled()
