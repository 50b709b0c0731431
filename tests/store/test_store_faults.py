"""Store faults never stop training (S6): disk full, a run directory that cannot be written,
a database deleted mid-run. One warning, a dropped count, a spill file holding the points,
and logging resumes once the fault is gone; strict=True raises StoreError instead."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import deepscope
import deepscope.store
from deepscope.errors import StoreError
from deepscope.store import jsonenc
from deepscope.store.writer import StoreWarning


def _disk_full(op: str) -> None:
    if op == "commit":
        raise sqlite3.OperationalError("database or disk is full")


def _spilled(run: deepscope.Run) -> list[dict]:  # type: ignore[type-arg]
    assert run.spill_path is not None
    return [jsonenc.loads(line) for line in run.spill_path.read_text().splitlines()]


def _steps(logdir: Path, name: str, tag: str = "loss") -> list[int]:
    return [p.step for p in deepscope.store.open(logdir).run(name).scalars(tag, max_points=10**6)]


def test_disk_full_spills_warns_once_and_resumes(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.05)
        for step in range(300):
            if step == 100:
                run._writer.fault_hook = _disk_full
            if step == 200:
                run._writer.fault_hook = None
            run.log({"loss": float(step), "nan": float("nan")}, step=step)
            if step % 10 == 9:
                run.flush()
        run.finish()
    store_warnings = [w for w in caught if issubclass(w.category, StoreWarning)]
    assert len(store_warnings) == 1, [str(w.message) for w in store_warnings]
    assert "disk is full" in str(store_warnings[0].message)
    assert run.dropped == 2 * 100
    spilled = _spilled(run)
    assert sorted({r["step"] for r in spilled}) == list(range(100, 200))
    assert run.spill_path == tmp_path / "r.spill.jsonl"
    stored = _steps(tmp_path, "r")
    assert stored == list(range(100)) + list(range(200, 300))  # resumed after the fault


def test_strict_mode_raises_store_error_in_the_callers_thread(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="r", strict=True)
    run.log({"loss": 1.0})
    run.flush()
    run._writer.fault_hook = _disk_full
    run.log({"loss": 2.0})
    with pytest.raises(StoreError, match="disk is full"):
        run.flush()
    run._writer.fault_hook = None
    run.log({"loss": 3.0})
    run.flush()
    run.finish()
    assert run.dropped == 1 and _spilled(run)[0]["value"] == 2.0
    assert _steps(tmp_path, "r") == [0, 2]


def test_strict_mode_refuses_an_unwritable_logdir_at_init(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot"):
        deepscope.init(logdir=blocker / "runs", strict=True)


def test_run_directory_replaced_by_a_file_then_restored(tmp_path: Path) -> None:
    """A real fault: the run directory vanishes and a plain file takes its place, so nothing
    can be created there; when the file goes, the run is recreated and logging resumes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.05)
        for step in range(150):
            if step == 50:
                run.flush()
                shutil.rmtree(tmp_path / "r")
                (tmp_path / "r").write_text("in the way")
            if step == 100:
                run.flush()
                (tmp_path / "r").unlink()
            run.log({"loss": float(step)}, step=step)
            if step % 10 == 9:
                run.flush()
        run.finish()
    store_warnings = [w for w in caught if issubclass(w.category, StoreWarning)]
    assert len(store_warnings) == 1, [str(w.message) for w in store_warnings]
    assert run.dropped == 50
    assert sorted(r["step"] for r in _spilled(run)) == list(range(50, 100))
    assert _steps(tmp_path, "r") == list(range(100, 150))
    conn = sqlite3.connect(tmp_path / "r" / "run.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_database_deleted_mid_run_is_recreated_with_one_warning(tmp_path: Path) -> None:
    """Writes to a deleted file would vanish silently (the inode lives on while open); the
    writer checks before each commit, warns once and continues in a fresh run.db."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.05)
        for step in range(100):
            if step == 40:
                run.flush()
                for suffix in ("", "-wal", "-shm"):
                    (tmp_path / "r" / f"run.db{suffix}").unlink(missing_ok=True)
            run.log({"loss": float(step)}, step=step)
        run.finish()
    store_warnings = [w for w in caught if issubclass(w.category, StoreWarning)]
    assert len(store_warnings) == 1 and "deleted" in str(store_warnings[0].message)
    assert run.dropped == 0
    assert _steps(tmp_path, "r") == list(range(40, 100))
    assert deepscope.store.open(tmp_path).run("r").info().status == "finished"


REAL_DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys, warnings
    import deepscope
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    run = deepscope.init(logdir=sys.argv[1], name="r", flush_interval=0.05)
    run.log({"loss": 0.0}, step=0)
    run.flush()
    limit = 600_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 40_000):
            run.log({"loss": float(step), "acc": 1.0 / step}, step=step)
            if step % 1000 == 0:
                run.flush()
        run.finish()
    n = sum(1 for w in caught if w.category.__name__ == "StoreWarning")
    print("WARNINGS", n, "DROPPED", run.dropped)
    """
)


def test_a_real_file_size_limit_degrades_without_stopping_the_loop(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(REAL_DISK_FULL)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:2] == ["WARNINGS", "1"], out.stdout + out.stderr
    dropped = int(words[3])
    assert dropped > 0
    conn = sqlite3.connect(tmp_path / "runs" / "r" / "run.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT COUNT(*) FROM scalar").fetchone()[0]
    spill = tmp_path / "runs" / "r.spill.jsonl"
    spilled = len(spill.read_text().splitlines()) if spill.exists() else 0
    assert stored + dropped == 1 + 2 * 39_999  # every point is stored or counted as dropped
    assert spilled > 0


def test_a_degraded_writer_does_not_spin(tmp_path: Path) -> None:
    import time

    run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.05, heartbeat_interval=0.05)
    run._writer.fault_hook = _disk_full
    run.log({"loss": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.flush()
    proc_cpu = time.process_time()
    time.sleep(1.0)
    used = time.process_time() - proc_cpu
    assert used < 0.5, f"writer thread burnt {used:.2f} s of CPU in 1 s while degraded"
    run._writer.fault_hook = None
    run.finish()
