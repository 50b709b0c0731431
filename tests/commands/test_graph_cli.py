"""`deepscope graph` and `deepscope summary` through the real click entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepscope.cli import main

FACTORY = """
import sys
sys.path.insert(0, {zoo!r})
from zoo import CNN, Transformer
def build():
    return CNN()
def tokens():
    return Transformer()
"""


@pytest.fixture()
def factory_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    zoo = str(Path(__file__).parents[1] / "sources")
    (tmp_path / "user_models.py").write_text(FACTORY.format(zoo=zoo))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_summary_of_a_factory_prints_totals(factory_dir: Path) -> None:
    r = CliRunner().invoke(
        main, ["summary", "user_models:build", "--input-shape", "2,3,16,16", "--depth", "1"]
    )
    assert r.exit_code == 0, r.output
    assert "Total params: 1,562" in r.output
    assert "features (Sequential)" in r.output and "[2, 10]" in r.output
    assert "layer" not in r.output.lower().split("layer (type)")[1]  # depth 1 only


def test_summary_with_int_tokens_dtype(factory_dir: Path) -> None:
    r = CliRunner().invoke(
        main, ["summary", "user_models:tokens", "--input-shape", "1,5", "--dtype", "int64"]
    )
    assert r.exit_code == 0, r.output
    assert "TransformerEncoderLayer" in r.output


def test_graph_writes_svg_png_and_json(factory_dir: Path) -> None:
    runner = CliRunner()
    for name in ("g.svg", "g.png", "g.json"):
        r = runner.invoke(
            main,
            [
                "graph",
                "user_models:build",
                "--input-shape",
                "1,3,16,16",
                "-o",
                name,
                "--depth",
                "1",
            ],
        )
        assert r.exit_code == 0, r.output
        assert (factory_dir / name).stat().st_size > 100
    assert (factory_dir / "g.svg").read_text().count(
        'class="node"'
    ) == 5  # input, features, flatten, head, output
    assert (factory_dir / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((factory_dir / "g.json").read_text())
    assert doc["schemaVersion"] == 1 and doc["groups"][""]["params"] == 1562


def test_errors_are_clear(factory_dir: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["graph", "missing.onnx", "-o", "x.svg"])
    assert r.exit_code != 0 and "not found" in r.output
    r = runner.invoke(main, ["graph", "user_models:build", "-o", "x.svg"])
    assert r.exit_code != 0 and "--input-shape" in r.output
    r = runner.invoke(
        main, ["graph", "user_models:build", "--input-shape", "1,3,16,16", "-o", "x.gif"]
    )
    assert r.exit_code != 0 and ".svg" in r.output
    r = runner.invoke(main, ["summary", "user_models:nothere", "--input-shape", "1,3"])
    assert r.exit_code != 0 and "no attribute" in r.output
    (factory_dir / "weird.xyz").write_bytes(b"\x00" * 16)
    r = runner.invoke(main, ["summary", "weird.xyz"])
    assert r.exit_code != 0 and "no deepscope source reads" in r.output
    assert not os.path.exists("x.svg")


def test_help_says_factories_run_code() -> None:
    r = CliRunner().invoke(main, ["graph", "--help"])
    assert "IMPORTED AND RUN" in " ".join(r.output.split())
