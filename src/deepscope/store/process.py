"""Process-wide bookkeeping for run writers: fork, exit and SIGTERM.

* fork: while a process forks, every writer's I/O lock (`fork_lock()`) is held, so no
  database call is in flight; in the child each writer drops (never closes) the parent's
  connection and starts afresh on its first write (`after_fork_child()`).
* exit: `close_all` flushes and closes every writer (atexit: ``interrupted`` when an
  uncaught exception ended the program; multiprocessing children run it through a
  `multiprocessing.util.Finalize` registered by the writer).
* SIGTERM: flush, mark runs interrupted, then terminate as the default action would.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from deepscope.store.protocol import RunWriter as _Writer

    class RunWriter(_Writer, Protocol):
        """A writer with fork hooks (every backend's writer)."""

        def fork_lock(self) -> threading.Lock | None: ...

        def after_fork_child(self) -> None: ...


log = logging.getLogger("deepscope.store")

_WRITERS: weakref.WeakSet[RunWriter] = weakref.WeakSet()
FORK_ORPHANS: list[Any] = []  # inherited connections, never touched again
_HOOKS_INSTALLED = False
_HOOKS_LOCK = threading.Lock()


def register(w: RunWriter) -> None:
    global _HOOKS_INSTALLED
    _WRITERS.add(w)
    with _HOOKS_LOCK:
        if not _HOOKS_INSTALLED:
            _HOOKS_INSTALLED = True
            os.register_at_fork(
                before=_before_fork,
                after_in_parent=_after_fork_parent,
                after_in_child=_after_fork_child,
            )
            atexit.register(_at_exit)


def unregister(w: RunWriter) -> None:
    _WRITERS.discard(w)


_HELD: list[threading.Lock] = []


def _before_fork() -> None:
    # Hold every writer's I/O lock so no SQLite call is in flight while the process forks.
    for w in list(_WRITERS):
        lock = w.fork_lock()
        if lock is not None:
            lock.acquire()
            _HELD.append(lock)


def _after_fork_parent() -> None:
    while _HELD:
        _HELD.pop().release()


def _after_fork_child() -> None:
    _HELD.clear()
    global _HOOKS_LOCK
    _HOOKS_LOCK = threading.Lock()
    for w in list(_WRITERS):
        w.after_fork_child()


def close_ref(ref: weakref.ref[RunWriter]) -> None:
    w = ref()
    if w is not None:
        w.close()


_SIGNALS_INSTALLED = False


def install_signal_handlers() -> None:
    """On SIGTERM, flush and close every run (marked interrupted), then die as before.

    Installed once, from the main thread, and only where SIGTERM still has its default
    action (a framework's own handler is left alone). SIGINT needs nothing: its
    KeyboardInterrupt unwinds through ``with run:``, or reaches the exit handler, which
    marks the runs interrupted.
    """
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _SIGNALS_INSTALLED = True
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    # Close from a helper thread: the interrupted main thread may hold a lock we need.
    t = threading.Thread(target=close_all, args=("interrupted",), daemon=True)
    t.start()
    t.join(20.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    """Close every run at interpreter exit: ``interrupted`` when an uncaught exception
    (Ctrl-C's KeyboardInterrupt outside ``with run:``, an error) ended the program,
    ``finished`` otherwise. Python records that exception in ``sys.last_value`` before
    the exit handlers run; interactive sessions (a REPL, Jupyter) record every error
    there, so they finish as before."""
    import sys

    ended_by_error = getattr(sys, "last_value", None) is not None
    interactive = hasattr(sys, "ps1") or sys.flags.interactive or "ipykernel" in sys.modules
    close_all("interrupted" if ended_by_error and not interactive else "finished")


def close_all(state: str = "finished") -> None:
    """Flush and close every open writer of this process (atexit, SIGTERM)."""
    for w in list(_WRITERS):
        try:
            w.close(state)
        except Exception as exc:  # pragma: no cover - best effort at exit
            log.warning("deepscope: closing run '%s' failed: %s", w.name, exc)
