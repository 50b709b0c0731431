"""Deleting a run from a log directory (SQLite: the run is the folder ``LOGDIR/<run>/``).

`delete_sqlite_run` refuses a run that is still being written (a live session, as the
listing tells it: `deepscope.store.records.run_status`) unless forced, and a run whose
database cannot be read unless forced (whether it is live cannot be told then). The
state is read under the run's write lock (``BEGIN IMMEDIATE`` on its ``run.db``), so no
commit is in flight while it is read.

The folder is first renamed to a hidden name (``LOGDIR/.deleting-<run>-<hex>``: not a run
name, so listings drop the run at once and a writer that starts afresh makes a new folder),
then removed with `remove_tree`, which never follows a symbolic link: a link inside the run
is removed as a link, and a run folder (or ``run.db``) that is itself a link is refused
(docs/threats.md S10: nothing outside the log directory is ever touched).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import stat
from pathlib import Path

from deepscope.errors import NotFoundError, RunInUseError, StoreError, UnreadableRunError
from deepscope.store.schema import BUSY_TIMEOUT_MS, DB_NAME, is_valid_run_name

__all__ = ["TRASH_PREFIX", "delete_sqlite_run", "remove_tree"]

TRASH_PREFIX = ".deleting-"  # a run folder being removed (left behind only by a crash)


def remove_tree(path: Path) -> None:
    """Remove the directory `path` and everything in it without following any symbolic
    link (`StoreError` if `path` itself is a link or not a directory)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"refusing to remove {path}: it is not a plain directory")
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux has it
        raise StoreError(
            "this platform cannot remove a folder without racing symbolic links: "
            f"remove {path} by hand"
        )
    try:
        shutil.rmtree(path)  # fd-based: entries are unlinked, links are never followed
    except OSError as exc:
        raise StoreError(f"could not remove {path} completely: {exc}") from exc


def _run_dir(root: Path, name: str) -> Path:
    """The run's folder, checked: a plain directory (no link) holding a plain ``run.db``."""
    if not isinstance(name, str) or not is_valid_run_name(name):
        raise NotFoundError(f"no run named {name!r} (run names use letters, digits and ._=+-)")
    run_dir = root / name
    try:
        st = os.lstat(run_dir)
    except OSError:
        raise NotFoundError(f"no run named {name!r} in {root}") from None
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(
            f"{run_dir} is a symbolic link: deepscope never deletes through links. "
            "Remove the link yourself (rm) if that is what you want."
        )
    if not stat.S_ISDIR(st.st_mode):
        raise NotFoundError(f"no run named {name!r} in {root}")
    try:
        db = os.lstat(run_dir / DB_NAME)
    except OSError:
        raise NotFoundError(f"{run_dir} holds no {DB_NAME}: not a deepscope run") from None
    if not stat.S_ISREG(db.st_mode):
        raise StoreError(f"{run_dir / DB_NAME} is not a plain file: refusing to delete the run")
    return run_dir


def delete_sqlite_run(
    root: Path, name: str, *, force: bool = False, stale_after: float = 30.0
) -> None:
    """Delete run `name` of the log directory `root` (its folder: ``run.db`` and blobs).

    Raises `NotFoundError` for an unknown run, `RunInUseError` for a run still being
    written (or unreadable, so its state is unknown) unless `force`, `StoreError` when the
    folder cannot be removed safely. The state is read under the run's write lock, so no
    batch is half-committed while it is checked; a writer that starts in the instant
    between the check and the rename writes into the folder being removed.
    """
    from deepscope.store.reader import SqliteRunReader

    run_dir = _run_dir(root, name)
    lock = _write_lock(run_dir / DB_NAME)
    try:
        reader = SqliteRunReader(name, run_dir, stale_after=stale_after, read_deadline=5.0)
        try:
            status, why = reader.info().status, ""
        except UnreadableRunError as exc:
            status, why = "unreadable", exc.reason
        except NotFoundError:
            status, why = "unreadable", f"its {DB_NAME} is empty (a writer may be creating it)"
    finally:
        # Closed before the rename: SQLite removes a WAL file by its path when the last
        # connection closes, and after the rename that path could be a new run's.
        if lock is not None:
            lock.close()
    if status == "running" and not force:
        raise RunInUseError(
            f"run '{name}' is still being written (a live session in {run_dir}): "
            "stop the training first, or pass --force (force=True) to delete it anyway"
        )
    if status == "unreadable" and not force:
        raise RunInUseError(
            f"run '{name}' cannot be read ({why}), so whether it is still being written "
            "cannot be told: pass --force (force=True) to delete it anyway"
        )
    trash = root / f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
    try:
        os.rename(run_dir, trash)  # renames the entry itself, never a link's target
    except OSError as exc:
        raise StoreError(f"could not delete run '{name}' ({run_dir}): {exc}") from exc
    remove_tree(trash)


def _write_lock(db_path: Path) -> sqlite3.Connection | None:
    """Hold the run's write lock (None when the file is no database we can lock: corrupt,
    or not deepscope's; the caller then needs `force`)."""
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            f"{db_path.resolve().as_uri()}?mode=rw",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
        )
        conn.execute("BEGIN IMMEDIATE")
        return conn
    except sqlite3.Error:
        if conn is not None:
            conn.close()
        return None
