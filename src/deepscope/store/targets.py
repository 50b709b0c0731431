"""Open a store or a run writer from a *target*: a log directory (SQLite, one ``run.db`` per
run) or a ``postgresql://`` URL. The only place that picks a backend."""

from __future__ import annotations

import os
from pathlib import Path

from deepscope.errors import StoreError
from deepscope.store.postgres.url import is_postgres_url
from deepscope.store.protocol import RunWriter, Store
from deepscope.store.schema import check_local_filesystem, generate_run_name, sanitize_run_name
from deepscope.store.session import WriterOptions

__all__ = ["open_store", "open_writer"]

Target = str | os.PathLike[str]


def open_store(target: Target, *, stale_after: float = 30.0, read_deadline: float = 5.0) -> Store:
    """A `Store` over `target` (see `deepscope.store.open`)."""
    if is_postgres_url(target):
        from deepscope.store.postgres.reader import PostgresStore

        return PostgresStore(str(target), stale_after=stale_after, read_deadline=read_deadline)
    from deepscope.store.reader import open_store as open_sqlite

    return open_sqlite(target, stale_after=stale_after, read_deadline=read_deadline)


def open_writer(
    target: Target,
    name: str | None,
    *,
    config_json: str = "{}",
    options: WriterOptions | None = None,
    allow_network_fs: bool = False,
) -> RunWriter:
    """A `RunWriter` for run `name` (None: a fresh ``yyyymmdd-hhmmss-<hex>``) in `target`;
    an existing run of that name is joined."""
    options = options or WriterOptions()
    if is_postgres_url(target):
        from deepscope.store.postgres.writer import PostgresRunWriter

        run_name = sanitize_run_name(name) if name is not None else generate_run_name()
        return PostgresRunWriter(str(target), run_name, config_json=config_json, options=options)
    from deepscope.store.writer import RunWriter as SqliteRunWriter

    root = Path(target).expanduser()
    check_local_filesystem(root, allow_network_fs=allow_network_fs)
    run_dir = _make_run_dir(root, name, strict=options.strict)
    return SqliteRunWriter(run_dir, run_dir.name, config_json=config_json, options=options)


def _make_run_dir(root: Path, name: str | None, *, strict: bool) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if strict:
            raise StoreError(f"cannot create the log directory {root}: {exc}") from exc
    if name is not None:
        run_dir = root / sanitize_run_name(name)
        try:
            run_dir.mkdir(exist_ok=True)  # an existing run of this name is joined
        except OSError as exc:
            if strict:
                raise StoreError(f"cannot create the run directory {run_dir}: {exc}") from exc
        return run_dir
    for _ in range(100):
        run_dir = root / generate_run_name()
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
        except OSError as exc:
            if strict:
                raise StoreError(f"cannot create the run directory {run_dir}: {exc}") from exc
            return run_dir  # the writer degrades to the spill file and keeps retrying
    raise StoreError(f"could not find a free run name in {root}")  # pragma: no cover
