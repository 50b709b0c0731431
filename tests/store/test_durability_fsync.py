"""Promised durability matches what reaches the disk (S2a): with durability="full" the
write-ahead log is fsynced before every flush() returns; with "normal" commits are not
fsynced one by one (only checkpoints sync), which is why a power loss may roll back the
last batches."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLUSHES = 20

CHILD = textwrap.dedent(
    f"""
    import sys, deepscope
    run = deepscope.init(logdir=sys.argv[1], name="r", durability=sys.argv[2], flush_interval=60)
    for i in range({FLUSHES}):
        run.log({{"loss": float(i)}})
        run.flush()
    run.finish()
    """
)


def _wal_syncs(tmp_path: Path, durability: str) -> int:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trace = tmp_path / f"strace-{durability}.txt"
    out = subprocess.run(
        ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace),
         sys.executable, str(script), str(tmp_path / durability), durability],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode != 0 and "ptrace" in out.stderr:
        pytest.skip("ptrace is not permitted here")
    assert out.returncode == 0, out.stderr
    return sum(1 for line in trace.read_text().splitlines() if "run.db-wal>" in line)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_full_durability_fsyncs_the_wal_on_every_flush_and_normal_does_not(tmp_path: Path) -> None:
    full = _wal_syncs(tmp_path, "full")
    normal = _wal_syncs(tmp_path, "normal")
    assert full >= FLUSHES
    assert normal < FLUSHES // 4
