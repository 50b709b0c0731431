"""`deepscope migrate SOURCE DEST`: SQLite runs copied into another store (SQLite, and the
PostgreSQL of tests/_pg.py) through the store contract; every row equal, wall times kept,
idempotent, resumable after kill -9 with nothing lost or duplicated, credentials never
printed."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import deepscope
import deepscope.store
from deepscope.cli import main as cli
from deepscope.commands.migrate import count_run, migrate_runs

BIG = 30_000  # points of the big run's scalar tag: enough for several windows and batches


def _write_source(root: Path) -> None:
    """Three runs: every kind of row, NaN/±Inf, a repeated step, an interrupted run, and a
    big run whose scalars span several read windows."""
    with deepscope.init(logdir=root, name="small", config={"lr": 0.1, "q": "it's; --"}) as run:
        for step in range(50):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 50}, step=step)
        run.log({"loss": math.nan}, step=50)
        run.log({"loss": math.inf}, step=51)
        run.log({"loss": -math.inf}, step=52)
        run.log({"loss": 7.0}, step=52)  # the same step twice: both rows kept
        for s in range(4):
            run.log_histogram("w", [float(s), 1.0, 2.0, math.nan, math.inf], step=s, bins=8)
        run.log_text("notes", "hello <b>world</b>", step=3)
        run.log_blob("image", "pic", b"\x89PNG fake bytes", ext="png", meta={"w": 1}, step=2)
        run.log_blob("graph", "model", b'{"nodes": []}', ext="json", meta={"nodes": 0})
        run.log_event("nan", "loss is NaN", severity="error", layer="fc1", step=50)
        run.log_event("note", "second", severity="info", step=51)
    with pytest.raises(RuntimeError), deepscope.init(logdir=root, name="crashed") as run:
        run.log({"x": 1.0}, step=0)
        raise RuntimeError("training died")
    with deepscope.init(logdir=root, name="big", flush_interval=0.2) as run:
        for i in range(BIG):  # dense steps, then sparse: one read window holds more points
            step = i if i < 20_000 else 20_000 + (i - 20_000) * 100
            run.log({"y": float(i % 97)}, step=step)
        run.log_event("done", "big run done", severity="info")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("migrate-src")
    _write_source(root)
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "dest")
    return str(request.getfixturevalue("pg_fresh_url"))


def _same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _dump(store: Any, name: str) -> dict[str, Any]:
    """Everything the contract returns about one run (ids left out: they are the store's)."""
    r = store.run(name)
    info = r.info()
    out: dict[str, Any] = {"status": info.status, "config": info.config, "tags": {}}
    for t in sorted(r.tags(), key=lambda t: (t.kind, t.tag)):
        key = f"{t.kind}:{t.tag}"
        out["tags"][key] = (t.count, t.first_step, t.last_step)
        if t.kind == "scalar":
            pts = r.scalars(t.tag, max_points=t.count + 1)
            out[key] = [(p.step, p.wall_time, repr(p.value)) for p in pts]
        elif t.kind == "histogram":
            out[key] = [
                (h.step, h.wall_time, h.edges, h.counts, h.count, h.n_nan, h.n_posinf,
                 h.n_neginf, h.min, h.max, h.sum, h.sum_sq)
                for h in r.histograms(t.tag, max_points=t.count + 1)
            ]  # fmt: skip
        else:
            out[key] = [
                (b.step, b.wall_time, b.path, b.meta, r.read_blob(b))
                for b in r.blobs(t.kind, t.tag)
            ]
    out["events"] = [
        (e.step, e.wall_time, e.severity, e.kind, e.layer, e.message) for e in r.events(limit=10**6)
    ]
    return out


def test_every_row_is_copied_equal_and_a_second_run_changes_nothing(
    source: Path, dest: str
) -> None:
    report = migrate_runs(source, dest, flush_interval=0.05)
    assert report.ok, report
    assert {r.name: r.action for r in report.runs} == dict.fromkeys(
        ["big", "crashed", "small"], "copied"
    )
    src, dst = deepscope.store.open(source), deepscope.store.open(dest)
    assert dst.run_names() == ["big", "crashed", "small"]
    for name in src.run_names():
        assert _dump(dst, name) == _dump(src, name), name
    small = {r.name: r for r in report.runs}["small"]
    assert small.dest.as_dict() == {
        "scalars": 104, "histograms": 4, "events": 2, "blobs": 2, "graphs": 1
    }  # fmt: skip
    assert dst.run("crashed").info().status == "interrupted"
    assert dst.run("small").info().config == {"lr": 0.1, "q": "it's; --"}
    versions = {n: dst.run(n).version() for n in dst.run_names()}

    again = migrate_runs(source, dest)
    assert again.ok and {r.action for r in again.runs} == {"skipped"}
    assert {n: dst.run(n).version() for n in dst.run_names()} == versions  # not even opened


def test_a_run_that_grew_is_topped_up(tmp_path: Path, dest: str) -> None:
    src_dir = tmp_path / "src"
    with deepscope.init(logdir=src_dir, name="grows") as run:
        run.log({"a": 1.0}, step=0)
        run.log({"a": 1.0}, step=0)
    assert migrate_runs(src_dir, dest).ok
    with deepscope.init(logdir=src_dir, name="grows") as run:  # the run is joined and grows
        run.log({"a": 2.0, "b": 3.0}, step=1)
        run.log_event("late", "appended")
    report = migrate_runs(src_dir, dest)
    assert report.ok and [(r.action, r.copied) for r in report.runs] == [("resumed", 3)]
    src, dst = deepscope.store.open(src_dir), deepscope.store.open(dest)
    assert _dump(dst, "grows")["scalar:a"] == _dump(src, "grows")["scalar:a"]
    assert count_run(dst.run("grows")).as_dict() == count_run(src.run("grows")).as_dict()


KILLER = textwrap.dedent(
    """
    import os, signal, sys, time
    from deepscope.commands.migrate import migrate_runs
    source, dest, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = 0
    def progress(n):
        global seen
        seen += n
        if seen >= after:
            time.sleep(0.3)  # a few flushes land, the rest is still queued
            os.kill(os.getpid(), signal.SIGKILL)
    migrate_runs(source, dest, progress=progress, flush_interval=0.05)
    print("NOT KILLED")
    """
)


def test_migration_killed_midway_resumes_without_loss_or_duplicates(
    source: Path, dest: str, tmp_path: Path
) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), str(source), dest, str(BIG // 2)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    dst = deepscope.store.open(dest)
    partial = count_run(dst.run("big")).scalars
    assert 0 < partial < BIG  # really cut off midway (the big run sorts first)

    report = migrate_runs(source, dest)
    by_name = {r.name: r for r in report.runs}
    assert report.ok, report
    assert by_name["big"].action == "resumed"
    assert by_name["big"].copied == BIG + 1 - partial  # only what was missing (+ its event)
    src = deepscope.store.open(source)
    for name in src.run_names():
        assert _dump(dst, name)["tags"] == _dump(src, name)["tags"], name
    big_src, big_dst = _dump(src, "big"), _dump(dst, "big")
    assert big_dst["scalar:y"] == big_src["scalar:y"]  # every point once, in order
    assert big_dst["events"] == big_src["events"]


def test_cli_help_progress_and_summary(source: Path, dest: str) -> None:
    runner = CliRunner()
    helped = runner.invoke(cli, ["migrate", "--help"])
    assert helped.exit_code == 0
    assert "Resumable" in helped.output and "postgresql://" in helped.output
    assert "migrate" in runner.invoke(cli, ["--help"]).output
    done = runner.invoke(cli, ["migrate", str(source), dest])
    assert done.exit_code == 0, done.output
    assert "3 run(s) verified, 0 failed" in done.output
    assert "big" in done.output and "copied" in done.output
    password = dest.split("@")[0].rsplit(":", 1)[-1] if "@" in dest else None
    if password:
        assert password not in done.output
        assert "***" in done.output  # the destination is shown, masked
    again = runner.invoke(cli, ["migrate", str(source), dest])
    assert again.exit_code == 0 and again.output.count("skipped") == 3


def test_a_bad_password_fails_cleanly_without_printing_it(
    source: Path, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("pg_url"))
    user_pass, host = url.split("://", 1)[1].split("@", 1)
    wrong = f"postgresql://{user_pass.split(':')[0]}:s3cret-Wrong-pw@{host}"
    done = CliRunner().invoke(cli, ["migrate", str(source), wrong])
    assert done.exit_code != 0
    assert "s3cret-Wrong-pw" not in done.output
    assert "password" in done.output.lower() or "connect" in done.output.lower(), done.output


def test_runs_still_running_are_left_for_later(tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    run = deepscope.init(logdir=src_dir, name="live")
    try:
        run.log({"a": 1.0})
        run.flush()
        report = migrate_runs(src_dir, tmp_path / "dest")
        assert [(r.name, r.action) for r in report.runs] == [("live", "running")]
        assert report.ok
        assert not (tmp_path / "dest" / "live").exists()
    finally:
        run.finish()
    assert [r.action for r in migrate_runs(src_dir, tmp_path / "dest").runs] == ["copied"]
    assert os.path.exists(tmp_path / "dest" / "live" / "run.db")
