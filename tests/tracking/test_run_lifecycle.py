"""Process exit paths: normal exit without finish() (atexit), SIGTERM (flush, then die as
before, run marked interrupted), SIGINT (KeyboardInterrupt through `with run:`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import deepscope.store

ATEXIT = textwrap.dedent(
    """
    import sys, deepscope
    run = deepscope.init(logdir=sys.argv[1], name="r", flush_interval=60)
    for i in range(500):
        run.log({"loss": float(i)})
    # no flush, no finish: atexit commits and closes
    """
)

SIGNALLED = textwrap.dedent(
    """
    import os, sys, time, deepscope
    run = deepscope.init(logdir=sys.argv[1], name="r", flush_interval=60)
    for i in range(300):
        run.log({"loss": float(i)})

    def ready():
        with open(sys.argv[2], "w") as f:
            f.write("ready")

    if sys.argv[3] == "int":
        with run:
            ready()  # inside the block: the signal lands there
            while True:
                time.sleep(0.01)
    ready()
    while True:
        time.sleep(0.01)
    """
)


def _losses(logdir: Path) -> list[float]:
    return [
        p.value for p in deepscope.store.open(logdir).run("r").scalars("loss", max_points=10**6)
    ]


def test_exit_without_finish_commits_everything(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(ATEXIT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert _losses(tmp_path) == [float(i) for i in range(500)]
    assert deepscope.store.open(tmp_path).run("r").info().status == "finished"


def _signalled(tmp_path: Path, sig: int, mode: str) -> int:
    script = tmp_path / "child.py"
    script.write_text(SIGNALLED)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(ready), mode], stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    return proc.returncode


def test_sigterm_flushes_marks_interrupted_and_still_terminates(tmp_path: Path) -> None:
    assert _signalled(tmp_path, signal.SIGTERM, "term") == -signal.SIGTERM
    assert _losses(tmp_path) == [float(i) for i in range(300)]
    assert deepscope.store.open(tmp_path).run("r").info().status == "interrupted"


def test_sigint_unwinds_through_the_with_block(tmp_path: Path) -> None:
    assert _signalled(tmp_path, signal.SIGINT, "int") != 0
    assert _losses(tmp_path) == [float(i) for i in range(300)]
    assert deepscope.store.open(tmp_path).run("r").info().status == "interrupted"


def test_sigint_outside_the_with_block_still_marks_the_run_interrupted(tmp_path: Path) -> None:
    """Ctrl-C where no ``with run:`` catches it: the exit handler sees the uncaught
    KeyboardInterrupt and marks the run interrupted (it said finished before)."""
    assert _signalled(tmp_path, signal.SIGINT, "bare") != 0
    assert _losses(tmp_path) == [float(i) for i in range(300)]
    assert deepscope.store.open(tmp_path).run("r").info().status == "interrupted"


def test_an_uncaught_error_marks_the_run_interrupted(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(ATEXIT.replace("# no flush", "raise ValueError('boom')  # no flush"))
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, timeout=120
    )
    assert out.returncode == 1 and b"boom" in out.stderr
    assert _losses(tmp_path) == [float(i) for i in range(500)]
    assert deepscope.store.open(tmp_path).run("r").info().status == "interrupted"
