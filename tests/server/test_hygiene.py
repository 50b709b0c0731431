"""Code rules for the server (THREATS D7): no eval/exec/pickle, no getattr on request data,
no torch import, no route parameter that names a filesystem path."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import deepscope.server

SERVER = Path(deepscope.server.__file__).parent
SOURCES = sorted(p for p in SERVER.rglob("*.py") if "static" not in p.parts)
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr"}
BANNED_MODULES = {"pickle", "marshal", "shelve", "dill", "importlib", "torch", "subprocess"}


def test_ast_lint_bans_dynamic_code_and_pickle() -> None:
    assert len(SOURCES) >= 15
    problems: list[str] = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SERVER)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in BANNED_CALLS:
                    problems.append(f"{where} calls {node.func.id}()")
            if isinstance(node, ast.Import):
                problems += [f"{where} imports {a.name}" for a in node.names
                             if a.name.split(".")[0] in BANNED_MODULES]  # fmt: skip
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] in BANNED_MODULES:
                    problems.append(f"{where} imports from {node.module}")
    assert problems == []


def test_no_route_takes_a_path_parameter() -> None:
    """File routes take ids and run names; only the static route has a path, and it goes
    through `paths.confine`."""
    names: set[str] = set()
    for path in SOURCES:
        names |= set(re.findall(r"""params\.\w+\(request, "(\w+)\"""", path.read_text()))
    assert names, "no query parameters found: the lint lost track of params usage"
    assert not {n for n in names if re.search(r"path|file|dir", n, re.IGNORECASE)}
    static = (SERVER / "routes" / "static.py").read_text()
    assert "confine(" in static
    blobs = (SERVER / "routes" / "blobs.py").read_text()
    assert "confine(" in blobs


def test_server_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from deepscope.server.app import create_app, Settings\n"
        "import deepscope.server.runner, deepscope.commands.serve\n"
        "create_app(Settings())\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
