"""M1-M3 lint: code-executing loaders appear only in `_trusted.trusted_load`."""

from __future__ import annotations

import ast
from pathlib import Path

import deepscope

SRC = Path(deepscope.__file__).parent
AUDITED = ("sources/_trusted.py", "trusted_load")
BANNED_CALLS = {
    "pickle.load",
    "pickle.loads",
    "marshal.loads",
    "torch.jit.load",
    "torch.export.load",
    "eval",
    "exec",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _violations(tree: ast.AST, rel: str) -> list[str]:
    found: list[str] = []
    allowed: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and (rel, fn.name) == AUDITED:
            allowed |= {id(n) for n in ast.walk(fn)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in allowed:
            continue
        name = _dotted(node.func)
        if name in BANNED_CALLS:
            found.append(f"{rel}:{node.lineno} {name}(")
        for kw in node.keywords:
            if kw.arg == "weights_only" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is True
            ):
                found.append(f"{rel}:{node.lineno} weights_only not True")
    return found


def test_only_trusted_load_runs_code_from_files() -> None:
    problems: list[str] = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        problems += _violations(ast.parse(path.read_text(encoding="utf-8")), rel)
    assert problems == []


def test_the_lint_catches_what_it_should() -> None:
    bad = ast.parse(
        "import torch\ntorch.load(p, weights_only=False)\neval('1')\nmarshal.loads(b)\n"
    )
    assert len(_violations(bad, "x.py")) == 3
    assert _violations(ast.parse((SRC / AUDITED[0]).read_text()), AUDITED[0]) == []
