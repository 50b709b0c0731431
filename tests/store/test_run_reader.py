"""The read API over a log directory: listing, tags, series, blobs, events, status, version,
and confinement of every path it hands out."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

import deepscope
import deepscope.store
from deepscope.errors import NotFoundError, StoreError
from deepscope.store.protocol import BlobInfo


def _run(logdir: Path, name: str, n: int = 10, **kw: object) -> deepscope.Run:
    run = deepscope.init(logdir=logdir, name=name, config={"lr": 0.1, "name": name}, **kw)  # type: ignore[arg-type]
    for i in range(n):
        run.log({"loss": 1.0 / (i + 1), "acc": i / n})
    return run


def test_runs_are_listed_sorted_paginated_and_filtered(tmp_path: Path) -> None:
    for name in ["b-run", "a-run", "c-other"]:
        _run(tmp_path, name).finish()
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    store = deepscope.store.open(tmp_path)
    assert [r.name for r in store.runs()] == ["a-run", "b-run", "c-other"]
    assert [r.name for r in store.runs(offset=1, limit=1)] == ["b-run"]
    assert [r.name for r in store.runs(filter="RUN")] == ["a-run", "b-run"]
    assert store.count_runs(filter="other") == 1
    info = store.runs(filter="a-run")[0]
    assert info.status == "finished" and info.config == {"lr": 0.1, "name": "a-run"}
    assert info.finished is not None and info.created <= info.finished


@pytest.mark.parametrize(
    "bad", ["", "..", ".", "../x", "a/b", "/etc", "x\x00", "nope", "stray.txt"]
)
def test_unknown_or_unsafe_run_names_are_not_found(tmp_path: Path, bad: str) -> None:
    _run(tmp_path, "ok").finish()
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(NotFoundError):
        deepscope.store.open(tmp_path).run(bad)


def test_missing_logdir_is_a_clear_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        deepscope.store.open(tmp_path / "missing")


def test_tags_series_histograms_blobs_events(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", n=50)
    run.log_histogram("w", np.array([1.0, 2.0, np.nan, np.inf, -np.inf]), bins=4)
    run.log_text("note", "hello <script>")
    run.log_event("nan", "NaN first seen", layer="fc1", severity="error")
    run.finish()
    r = deepscope.store.open(tmp_path).run("r")
    tags = {(t.tag, t.kind): t for t in r.tags()}
    assert tags[("loss", "scalar")].count == 50
    assert (tags[("loss", "scalar")].first_step, tags[("loss", "scalar")].last_step) == (0, 49)
    assert ("w", "histogram") in tags and ("note", "text") in tags
    pts = r.scalars("loss", max_points=10)
    assert len(pts) <= 10 and pts[0].step == 0 and pts[-1].step == 49
    assert r.scalars("no-such-tag") == []
    (h,) = r.histograms("w")
    assert (h.count, h.n_nan, h.n_posinf, h.n_neginf) == (2, 1, 1, 1)
    assert sum(h.counts) == 2 and len(h.edges) == 5 and (h.min, h.max) == (1.0, 2.0)
    (b,) = r.blobs("text", "note")
    assert r.read_blob(b) == b"hello <script>" and b.meta == {"length": 14}
    assert r.blob_path(b).read_bytes() == b"hello <script>"
    (e,) = r.events()
    assert (e.kind, e.layer, e.severity, e.message, e.step) == (
        "nan",
        "fc1",
        "error",
        "NaN first seen",
        49,
    )


def test_blob_path_is_confined_to_the_run_directory(tmp_path: Path) -> None:
    _run(tmp_path, "r").finish()
    r = deepscope.store.open(tmp_path).run("r")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (r.directory / "blobs").mkdir(exist_ok=True)
    os.symlink(outside, r.directory / "blobs" / "link.txt")
    for path in [
        "../secret.txt",
        "/etc/passwd",
        "blobs/../../secret.txt",
        "blobs/link.txt",
        ".",
        "a\x00b",
        "..\\x",
    ]:
        with pytest.raises(NotFoundError):
            r.blob_path(BlobInfo(id=1, kind="image", tag="t", step=0, wall_time=0.0, path=path))


def test_version_grows_with_every_commit(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", n=1)
    run.flush()
    r = deepscope.store.open(tmp_path).run("r")
    v1 = r.version()
    run.log({"loss": 0.5})
    run.flush()
    v2 = r.version()
    run.finish()
    assert v2 > v1 and r.version() >= v2


def test_status_running_then_interrupted_when_heartbeat_goes_stale(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", n=1, heartbeat_interval=60.0)
    run.flush()
    assert deepscope.store.open(tmp_path).run("r").info().status == "running"
    time.sleep(0.3)
    assert deepscope.store.open(tmp_path, stale_after=0.2).run("r").info().status == "interrupted"
    run.finish()
    assert deepscope.store.open(tmp_path, stale_after=0.2).run("r").info().status == "finished"


def test_heartbeat_keeps_a_quiet_run_running_whatever_the_flush_interval(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="r", flush_interval=60.0, heartbeat_interval=0.1)
    run.log({"loss": 1.0})
    run.flush()
    time.sleep(1.0)
    assert deepscope.store.open(tmp_path, stale_after=0.5).run("r").info().status == "running"
    run.finish()


def test_an_exception_in_the_with_block_marks_the_run_interrupted(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with deepscope.init(logdir=tmp_path, name="r") as run:
            run.log({"loss": 1.0})
            raise KeyError("boom")
    info = deepscope.store.open(tmp_path).run("r").info()
    assert info.status == "interrupted"
    assert deepscope.store.open(tmp_path).run("r").scalars("loss")[0].value == 1.0


def test_reader_on_an_unwritable_directory_falls_back_or_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite needs run.db-shm next to a WAL database; where it cannot create it, a clean
    run is opened immutable and a run with a pending WAL gives a clear error, never a hang.
    (Tests run as root, for whom chmod changes nothing, so the refusal is simulated.)"""
    _run(tmp_path, "r").finish()
    real_connect = sqlite3.connect

    def refuse_ro(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        if "mode=ro" in str(database) and "immutable" not in str(database):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_connect(database, *args, **kwargs)  # type: ignore[arg-type, call-overload, no-any-return]

    monkeypatch.setattr(sqlite3, "connect", refuse_ro)  # the module schema.py uses
    r = deepscope.store.open(tmp_path).run("r")
    assert len(r.scalars("loss")) == 10
    (tmp_path / "r" / "run.db-wal").write_bytes(b"\0" * 100)  # a WAL with frames pending
    t = time.monotonic()
    with pytest.raises(StoreError, match="writable"):
        r.scalars("loss")
    assert time.monotonic() - t < 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_reader_on_a_chmod_readonly_copy(tmp_path: Path) -> None:  # pragma: no cover - non-root
    _run(tmp_path, "r").finish()
    (tmp_path / "r").chmod(0o555)
    try:
        assert len(deepscope.store.open(tmp_path).run("r").scalars("loss")) == 10
    finally:
        (tmp_path / "r").chmod(0o755)


def test_non_finite_and_negative_zero_come_back_by_class(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="r")
    vals = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e308, -1e308]
    for i, v in enumerate(vals):
        run.log({"x": v}, step=i)
    run.finish()
    got = [p.value for p in deepscope.store.open(tmp_path).run("r").scalars("x")]
    assert math.isnan(got[0]) and got[1:3] == [math.inf, -math.inf]
    assert [math.copysign(1.0, g) for g in got[3:5]] == [-1.0, 1.0]
    assert got[5:] == vals[5:]
