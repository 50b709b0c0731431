"""Forked DataLoader workers logging through a Run created in the parent (S8).

Semantics: SQLite connections never cross fork(). A forked child gets its own writer
thread and connection on its first log call, writing into the same run database as its
own session (parent = the parent's session), and flushes when the worker exits. What the
parent had queued but not committed at fork time stays the parent's to commit.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

import deepscope
import deepscope.store


class LoggingDataset(Dataset):  # type: ignore[type-arg]
    def __init__(self, run: deepscope.Run, n: int) -> None:
        self.run, self.n = run, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.run.log({"item": float(i), "pid": float(os.getpid())}, step=i)
        return torch.tensor(float(i))


def test_forked_dataloader_workers_log_into_the_parents_run(tmp_path: Path) -> None:
    n = 400
    run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.05)
    for i in range(50):
        run.log({"parent": float(i)})  # some of this is still queued when the workers fork
    loader = DataLoader(
        LoggingDataset(run, n), batch_size=8, num_workers=2, multiprocessing_context="fork"
    )
    for epoch in range(2):
        seen = sorted(float(x) for batch in loader for x in batch)
        assert seen == [float(i) for i in range(n)]
        run.log({"epoch": float(epoch)})
    run.finish()
    db = tmp_path / "r" / "run.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(
        conn.execute(
            "SELECT t.name, COUNT(*) FROM scalar s JOIN tag t ON t.id = s.tag_id GROUP BY t.name"
        )
    )
    assert counts == {"item": 2 * n, "pid": 2 * n, "parent": 50, "epoch": 2}
    sessions = conn.execute("SELECT pid, parent, state FROM session ORDER BY id").fetchall()
    conn.close()
    parent = [s for s in sessions if s[1] is None]
    children = [s for s in sessions if s[1] is not None]
    assert len(parent) == 1 and parent[0][0] == os.getpid()
    assert len(children) == 4  # 2 workers x 2 epochs
    assert all(s[2] == "finished" for s in sessions)
    pids = {
        p.value for p in deepscope.store.open(tmp_path).run("r").scalars("pid", max_points=10**6)
    }
    assert float(os.getpid()) not in pids and len(pids) == 4
    assert deepscope.store.open(tmp_path).run("r").info().status == "finished"


def test_a_child_never_touches_the_parents_connection(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="r")
    run.log({"a": 1.0})
    run.flush()
    parent_conn = run._writer._conn
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            assert run._writer._conn is None
            run.log({"a": 2.0})
            run.flush()
            assert run._writer._conn is not None and run._writer._conn is not parent_conn
            run.finish()
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.log({"a": 3.0})
    run.finish()
    values = [p.value for p in deepscope.store.open(tmp_path).run("r").scalars("a")]
    assert sorted(values) == [1.0, 2.0, 3.0]
