"""The run store: one SQLite database per run, written by `deepscope.tracking`, read here.

Example:
    >>> import deepscope.store
    >>> store = deepscope.store.open("runs")  # doctest: +SKIP
    >>> [r.name for r in store.runs()]  # doctest: +SKIP

Imports the standard library (and numpy for histograms) only: no torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from deepscope.errors import StoreError

if TYPE_CHECKING:
    from deepscope.store.reader import SqliteStore

__all__ = ["StoreError", "open"]


def open(  # noqa: A001 - the documented name: deepscope.store.open(logdir)
    logdir: str | os.PathLike[str], *, stale_after: float = 30.0, read_deadline: float = 5.0
) -> SqliteStore:
    """A `StoreReader` over the runs in `logdir`.

    `stale_after`: seconds without a heartbeat after which a run that did not finish
    reads as ``"interrupted"`` (the writer beats every 5 s; a writer on this machine whose
    process is gone reads ``"interrupted"`` at once). `read_deadline`: seconds one read may
    take; a run.db that cannot be read raises `deepscope.errors.UnreadableRunError` (its
    subclass `ReadDeadlineError` past the deadline) and is listed as ``"unreadable"``.
    """
    from deepscope.store.reader import open_store

    return open_store(logdir, stale_after=stale_after, read_deadline=read_deadline)
