"""`deepscope.init(group=...)` from every rank of a real torch.distributed job (gloo on
localhost): one run per rank, named and tagged with its rank, exact counts, nothing mixed
between ranks; and the run listing reports each run's group and rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import deepscope
import deepscope.store
from deepscope.server.listing import Listed, group_of
from deepscope.tracking._group import RankInfo, detect_rank, rank_run_name

WORLD = 4
STEPS = 300
HISTS = 5
EVENTS = 3

# The job: torch is imported once, then WORLD ranks are forked (4 fresh torch imports would
# cost ~12 s of CPU on this 2-core machine). Each rank's rank comes from torch.distributed
# (RANK is not in its environment).
JOB_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys
    import torch
    import torch.distributed as dist
    import deepscope

    def rank_main(rank, world, logdir, store, steps, hists, events, out):
        dist.init_process_group("gloo", rank=rank, world_size=world)
        where = {"logdir": logdir} if store == "-" else {"store": store}
        run = deepscope.init(group="job-42", config={"lr": 0.1}, flush_interval=0.1, **where)
        for step in range(steps):
            t = torch.tensor([float(rank + 1)])
            if step % 50 == 0:
                dist.all_reduce(t)  # the job really is one job: every rank sees the sum
            run.log({"loss": rank * 1000.0 + step, "reduced": float(t.item())}, step=step)
        for h in range(hists):
            run.log_histogram("w", torch.full((10 + rank,), float(h)), step=h)
        for e in range(events):
            run.log_event("note", f"rank {rank} event {e}", severity="info", step=e)
        run.log_text("who", f"I am rank {rank}")
        run.finish()
        dist.barrier()
        dist.destroy_process_group()
        out.put((rank, run.name, run.dropped))

    if __name__ == "__main__":
        world, logdir, store = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        steps, hists, events = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        procs = [ctx.Process(target=rank_main,
                             args=(r, world, logdir, store, steps, hists, events, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        results = sorted(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0, p.exitcode
        for rank, name, dropped in results:
            print("RUN", name, dropped)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_job(tmp_path: Path, logdir: str, store: str = "-") -> list[str]:
    """Run one gloo job of WORLD ranks, each logging through `deepscope.init(group=...)`;
    the run names in rank order."""
    pytest.importorskip("torch.distributed")
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    args = [str(WORLD), logdir, store, str(STEPS), str(HISTS), str(EVENTS)]
    proc = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "StoreWarning" not in proc.stderr, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("RUN ")]
    assert [dropped for _, _, dropped in rows] == ["0"] * WORLD
    return [name for _, name, _ in rows]


def check_job(store: deepscope.store.SqliteStore | object, names: list[str]) -> None:
    """Exact counts per rank, each rank's own values, its place recorded in its config."""
    assert names == [f"job-42.rank-{r}" for r in range(WORLD)]
    listed = {r.name: r for r in store.runs()}  # type: ignore[attr-defined]
    assert sorted(listed) == names
    for rank, name in enumerate(names):
        info = listed[name]
        assert info.status == "finished"
        place = info.config["deepscope"]
        assert place["group"] == "job-42" and place["rank"] == rank
        assert place["world_size"] == WORLD and place["host"] == socket.gethostname()
        assert info.config["lr"] == 0.1
        reader = store.run(name)  # type: ignore[attr-defined]
        counts = {(t.kind, t.tag): t.count for t in reader.tags()}
        assert counts[("scalar", "loss")] == STEPS and counts[("scalar", "reduced")] == STEPS
        assert counts[("histogram", "w")] == HISTS
        loss = reader.scalars("loss", max_points=10 * STEPS)
        assert [p.step for p in loss] == list(range(STEPS))
        assert [p.value for p in loss] == [rank * 1000.0 + s for s in range(STEPS)]
        reduced = [p.value for p in reader.scalars("reduced", max_points=10 * STEPS)]
        total = float(sum(range(1, WORLD + 1)))
        assert reduced == [total if s % 50 == 0 else float(rank + 1) for s in range(STEPS)]
        hists = reader.histograms("w", max_points=100)
        assert [h.count for h in hists] == [10 + rank] * HISTS
        events = reader.events()
        assert sorted(e.message for e in events) == [
            f"rank {rank} event {e}" for e in range(EVENTS)
        ]
        texts = reader.blobs("text")
        assert len(texts) == 1
        assert reader.blob_path(texts[0]).read_text() == f"I am rank {rank}"


def test_four_gloo_ranks_log_one_group_with_exact_counts(tmp_path: Path) -> None:
    logdir = tmp_path / "runs"
    names = run_job(tmp_path, str(logdir))
    store = deepscope.store.open(logdir)
    check_job(store, names)
    rows = [Listed(i.name, i).to_json() for i in store.runs()]
    assert [(r["group"], r["rank"]) for r in rows] == [("job-42", r) for r in range(WORLD)]


def test_four_gloo_ranks_log_one_group_into_postgresql(tmp_path: Path, pg_fresh_url: str) -> None:
    names = run_job(tmp_path, str(tmp_path / "unused"), store=pg_fresh_url)
    store = deepscope.store.open(pg_fresh_url)
    check_job(store, names)
    rows = [Listed(i.name, i).to_json() for i in store.runs()]
    assert [(r["group"], r["rank"]) for r in rows] == [("job-42", r) for r in range(WORLD)]
    assert not (tmp_path / "unused").exists()


def test_rank_from_environment_and_name_padding(tmp_path: Path) -> None:
    info = detect_rank({"RANK": "3", "WORLD_SIZE": "12", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.source) == (3, 12, 1, "env")
    assert rank_run_name("job 7", info) == "job-7.rank-03"  # sorts by rank up to rank 11
    assert detect_rank({}).source == "default"
    assert (detect_rank({}).rank, detect_rank({}).world_size) == (0, 1)
    with pytest.raises(ValueError, match="RANK=4 is not below WORLD_SIZE=4"):
        detect_rank({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="RANK is not"):
        detect_rank({"WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="not an integer"):
        detect_rank({"RANK": "one"})


def test_group_from_env_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with deepscope.init(logdir=tmp_path, group="sweep'; DROP TABLE run;--", name="exp") as run:
        run.log({"x": 1.0})
    assert run.name == "exp.rank-2"  # a given name is the prefix: every rank still has its own
    info = deepscope.store.open(tmp_path).run("exp.rank-2").info()
    assert group_of(info.config) == ("sweep-DROP-TABLE-run", 2)
    assert "local_rank" not in info.config["deepscope"]
    with pytest.raises(ValueError, match="reserved"):
        deepscope.init(logdir=tmp_path, group="g", config={"deepscope": 1})


def test_group_of_ignores_hand_written_keys() -> None:
    assert group_of({"deepscope": {"group": "g", "rank": 1}}) == ("g", 1)
    for bad in ({}, {"deepscope": "g"}, {"deepscope": {"group": 3, "rank": 1}},
                {"deepscope": {"group": "g", "rank": True}}, {"deepscope": {"group": "g", "rank": -1}},
                {"deepscope": {"group": "", "rank": 0}}):  # fmt: skip
        assert group_of(bad) is None
    assert isinstance(RankInfo(0, 1, None, "h", "default"), RankInfo)
