"""`deepscope weights` and `deepscope diff` through the real click entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from deepscope.cli import main


def _files(tmp_path: Path) -> tuple[Path, Path]:
    g = torch.Generator().manual_seed(0)
    a = {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
        "fc.weight": torch.randn(6, 8, generator=g),
    }
    b = {k: v.clone() for k, v in a.items()}
    b["fc.weight"][1, 2] += 2.0
    b["extra.bias"] = torch.zeros(3)
    save_file(a, tmp_path / "a.safetensors")
    torch.save(b, tmp_path / "b.pt")
    return tmp_path / "a.safetensors", tmp_path / "b.pt"


def test_weights_command_writes_pictures_and_csv(tmp_path: Path) -> None:
    a, _ = _files(tmp_path)
    r = CliRunner().invoke(main, ["weights", str(a), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "2 tensors, 156 values (0 NaN, 0 Inf)" in r.output
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "stats.csv",
        "spectra.csv",
        "filters.png",
        "fc.weight.png",
        "fc.weight.esd.png",
    } <= names
    rows = (tmp_path / "out" / "stats.csv").read_text().splitlines()
    assert rows[1].startswith("tensor,conv.weight,4x3x3x3,float32,108,")


def test_diff_command_names_the_changed_tensors(tmp_path: Path) -> None:
    a, b = _files(tmp_path)
    r = CliRunner().invoke(main, ["diff", str(a), str(b), "-o", str(tmp_path / "d.csv")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "added     extra.bias"
    assert lines[1].startswith("changed   fc.weight  |d|=2 ") and lines[1].endswith("max|d|=2")
    assert lines[-1] == "2 of 3 tensors differ"
    assert "conv.weight,same," in (tmp_path / "d.csv").read_text()


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


def test_M1_commands_refuse_a_malicious_pickle(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": Payload(tmp_path / "SENTINEL")}, evil)
    a, _ = _files(tmp_path)
    for args in (["weights", str(evil), "-o", str(tmp_path / "o")], ["diff", str(a), str(evil)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and "system" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "SENTINEL").exists()
