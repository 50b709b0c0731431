"""The run store, written by `deepscope.tracking`, read by the dashboard: one SQLite database
per run in a log directory (the default), or one PostgreSQL database for many hosts
(``postgresql://…``, the ``[postgres]`` extra). Both implement `deepscope.store.protocol`.

Example:
    >>> import deepscope.store
    >>> store = deepscope.store.open("runs")  # doctest: +SKIP
    >>> store = deepscope.store.open("postgresql://me@db/deepscope")  # doctest: +SKIP
    >>> [r.name for r in store.runs()]  # doctest: +SKIP

Imports the standard library (and numpy for histograms) only: no torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from deepscope.errors import StoreError

if TYPE_CHECKING:
    from deepscope.store.protocol import RunWriter, Store
    from deepscope.store.session import WriterOptions

__all__ = ["StoreError", "open", "open_writer"]


def open(  # noqa: A001 - the documented name: deepscope.store.open(logdir)
    logdir: str | os.PathLike[str], *, stale_after: float = 30.0, read_deadline: float = 5.0
) -> Store:
    """A `Store` over the runs in `logdir`: a log directory, or a ``postgresql://`` URL.

    `stale_after`: seconds without a heartbeat after which a run that did not finish
    reads as ``"interrupted"`` (the writer beats every 5 s; a writer on this machine whose
    process is gone reads ``"interrupted"`` at once). `read_deadline`: seconds one read may
    take; a run.db that cannot be read raises `deepscope.errors.UnreadableRunError` (its
    subclass `ReadDeadlineError` past the deadline) and is listed as ``"unreadable"``.
    """
    from deepscope.store.targets import open_store

    return open_store(logdir, stale_after=stale_after, read_deadline=read_deadline)


def open_writer(
    target: str | os.PathLike[str],
    name: str | None,
    *,
    config_json: str = "{}",
    options: WriterOptions | None = None,
    allow_network_fs: bool = False,
) -> RunWriter:
    """A `RunWriter` for run `name` in `target` (a log directory or a ``postgresql://``
    URL); `deepscope.init` uses it. An existing run of that name is joined."""
    from deepscope.store.targets import open_writer as _open_writer

    return _open_writer(target, name, config_json=config_json, options=options,
                        allow_network_fs=allow_network_fs)  # fmt: skip
