"""The demo's log directory, trained once per session for every test under tests/demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`deepscope demo --no-serve --epochs 6` into a fresh folder (both runs)."""
    logdir = tmp_path_factory.mktemp("demo") / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "deepscope.cli", "demo", "--no-serve", "--epochs", "6", "--logdir", str(logdir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deepscope serve" in proc.stdout
    return logdir
