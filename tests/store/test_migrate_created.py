"""`deepscope migrate` keeps each run's creation time (not the time of the migration), so a
listing sorted by creation time orders migrated runs as the source does; and
`deepscope rm` deletes runs from either store through the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import deepscope
import deepscope.store
from deepscope.cli import main as cli
from deepscope.commands.migrate import migrate_runs

# creation times in the opposite order of the names (so sorting by name would be wrong)
CREATED = {"a-newest": 1_700_000_300.25, "b-middle": 1_600_000_200.5, "c-oldest": 1_500_000_100.0}


def _source(root: Path) -> Path:
    for name, created in CREATED.items():
        with deepscope.init(logdir=root, name=name) as run:
            run.log({"x": 1.0}, step=0)
        conn = sqlite3.connect(root / name / "run.db", isolation_level=None)
        conn.execute("UPDATE run SET created = ? WHERE id = 1", (created,))
        conn.close()
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "dest")
    return str(request.getfixturevalue("pg_fresh_url"))


def test_migrated_runs_keep_their_creation_time(tmp_path: Path, dest: str) -> None:
    src = _source(tmp_path / "src")
    assert {r.name: r.created for r in deepscope.store.open(src).runs()} == CREATED
    report = migrate_runs(src, dest)
    assert report.ok, report
    runs = deepscope.store.open(dest).runs()
    assert {r.name: r.created for r in runs} == CREATED
    by_time = [r.name for r in sorted(runs, key=lambda r: r.created)]
    assert by_time == ["c-oldest", "b-middle", "a-newest"]


def test_a_new_run_is_still_created_now(dest: str) -> None:
    import time

    before = time.time()
    with deepscope.init(store=dest, name="fresh") as run:
        run.log({"x": 1.0})
    created = deepscope.store.open(dest).run("fresh").info().created
    assert before - 1 <= created <= time.time() + 1


# ---- deepscope rm -----------------------------------------------------------------------------
def _runs(dest: str, *names: str) -> None:
    for name in names:
        with deepscope.init(store=dest, name=name) as run:
            run.log({"x": 1.0}, step=0)


def test_rm_deletes_with_yes_and_after_confirmation(dest: str) -> None:
    _runs(dest, "one", "two", "three")
    runner = CliRunner()
    done = runner.invoke(cli, ["rm", dest, "one", "--yes"])
    assert done.exit_code == 0, done.output
    assert "deleted run 'one'" in done.output
    assert deepscope.store.open(dest).run_names() == ["three", "two"]
    declined = runner.invoke(cli, ["rm", dest, "two"], input="n\n")
    assert declined.exit_code != 0 and "two" in declined.output  # listed, then aborted
    assert deepscope.store.open(dest).run_names() == ["three", "two"]
    no_answer = runner.invoke(cli, ["rm", dest, "two"], input="")  # not a terminal: no
    assert no_answer.exit_code != 0 and deepscope.store.open(dest).count_runs() == 2
    agreed = runner.invoke(cli, ["rm", dest, "two", "three"], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert deepscope.store.open(dest).run_names() == []
    if "@" in dest:  # a URL: its password is never printed
        password = dest.split("@")[0].rsplit(":", 1)[-1]
        assert password not in declined.output + agreed.output + done.output


def test_rm_refuses_unknown_and_running_runs_and_deletes_nothing(dest: str) -> None:
    _runs(dest, "kept")
    runner = CliRunner()
    unknown = runner.invoke(cli, ["rm", dest, "kept", "nope", "--yes"])
    assert unknown.exit_code == 1
    assert "no run named 'nope'" in unknown.output and "nothing was deleted" in unknown.output
    assert deepscope.store.open(dest).run_names() == ["kept"]
    live = deepscope.init(store=dest, name="live")
    try:
        live.log({"x": 1.0})
        live.flush()
        refused = runner.invoke(cli, ["rm", dest, "kept", "live", "--yes"])
        assert refused.exit_code == 1
        assert "'live' (running)" in refused.output and "--force" in refused.output
        assert deepscope.store.open(dest).run_names() == ["kept", "live"]
        forced = runner.invoke(cli, ["rm", dest, "live", "--yes", "--force"])
        assert forced.exit_code == 0, forced.output
        assert deepscope.store.open(dest).run_names() == ["kept"]
    finally:
        live.finish()


def test_rm_help_explains() -> None:
    helped = CliRunner().invoke(cli, ["rm", "--help"])
    assert helped.exit_code == 0
    text = " ".join(helped.output.split())
    for phrase in ("LOGDIR_OR_URL RUN...", "--force", "--yes", "symbolic link",
                   "one transaction", "cannot be undone", "still being written"):  # fmt: skip
        assert phrase in text, phrase
    assert "rm" in CliRunner().invoke(cli, ["--help"]).output
