"""The frontend type-checks against the generated wire types: a schema change that breaks a
panel fails here (Vite's build strips types without checking them)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
TSC = FRONTEND / "node_modules" / "typescript" / "bin" / "tsc"
NODE = shutil.which("node")

pytestmark = pytest.mark.slow


@pytest.mark.skipif(NODE is None or not TSC.exists(), reason="needs node and frontend/node_modules")
def test_frontend_type_checks_against_the_wire_types() -> None:
    assert NODE is not None
    proc = subprocess.run([NODE, str(TSC), "--noEmit", "-p", str(FRONTEND)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
