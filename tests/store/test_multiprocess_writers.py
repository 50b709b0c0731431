"""Many processes starting in the same instant on a fresh logdir (S5): distinct run names,
the schema created once per database, exact point counts, nothing raised in training."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import deepscope.store

STEPS = 1500
TAGS = 3

CHILD = textwrap.dedent(
    """
    import sys, time
    import deepscope
    logdir, name, start_at, steps, tags = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    while time.time() < start_at:  # barrier: everyone calls init in the same instant
        time.sleep(0.0005)
    run = deepscope.init(logdir=logdir, name=None if name == "-" else name, flush_interval=0.05)
    for step in range(steps):
        run.log({f"m{j}": step * 0.5 + j for j in range(tags)}, step=step)
        if step % 100 == 0:
            time.sleep(0.001)
    run.finish()
    print("DROPPED", run.dropped, run.name)
    """
)


def test_ten_processes_start_together_eight_runs_and_one_shared_run(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    logdir = tmp_path / "runs"  # does not exist yet: every process races to create it
    start_at = time.time() + 3.0
    names = ["-"] * 8 + ["shared", "shared"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(logdir), n, str(start_at), str(STEPS), str(TAGS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in names
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "Warning" not in err, err
        assert "DROPPED 0 " in out, out
    run_names = [out.split()[-1] for out, _ in outs]
    assert len(set(run_names[:8])) == 8 and run_names[8] == run_names[9] == "shared"
    store = deepscope.store.open(logdir)
    assert sorted(r.name for r in store.runs()) == sorted(set(run_names))
    for name in set(run_names):
        db = logdir / name / "run.db"
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM migration").fetchone()[0] == 1
        writers = 2 if name == "shared" else 1
        assert conn.execute("SELECT COUNT(*) FROM scalar").fetchone()[0] == STEPS * TAGS * writers
        assert conn.execute("SELECT COUNT(*) FROM session").fetchone()[0] == writers
        conn.close()
        tags = {t.tag: t.count for t in store.run(name).tags()}
        assert tags == {f"m{j}": STEPS * writers for j in range(TAGS)}
        assert store.run(name).info().status == "finished"
