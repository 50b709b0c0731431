"""Issue #11 item 12: one model-loading path for `view`, `graph` and `summary`: the same
flags, the same validation, the same loader and the same messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deepscope.cli import main
from deepscope.errors import DeepscopeError
from deepscope.sources.factory import parse_shape

COMMANDS = {"view": [], "graph": ["-o", "out.svg"], "summary": []}


def _run(cmd: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [cmd, *args, *COMMANDS[cmd]])
    return result.exit_code, result.output


@pytest.mark.parametrize("shape", ["1,0,8", "0", "1,-3", "1,,3", "a,b", "", "1.5,2", "１,2"])
def test_every_command_refuses_a_bad_input_shape_with_one_message(shape: str) -> None:
    outcomes = {cmd: _run(cmd, "user_models:build", "--input-shape", "1,3", "--input-shape",
                          shape) for cmd in COMMANDS}  # fmt: skip
    codes = {code for code, _ in outcomes.values()}
    messages = {out.strip().splitlines()[-1] for _, out in outcomes.values()}
    assert codes == {2} and len(messages) == 1, outcomes
    assert f"--input-shape '{shape}' needs sizes of at least 1" in messages.pop()
    with pytest.raises(DeepscopeError):
        parse_shape(shape)


def test_shapes_of_positive_sizes_parse() -> None:
    assert parse_shape("1,3,224,224") == (1, 3, 224, 224) == parse_shape("1x3x224x224")
    assert parse_shape(" 2, 8 ") == (2, 8) == parse_shape("2,8,")


def test_every_command_has_the_same_model_flags_and_explains_them() -> None:
    for cmd in COMMANDS:
        code, out = _run(cmd, "--help")
        text = " ".join(out.split())
        assert code == 0, out
        for flag in ("--input-shape", "--dtype", "--trust-model"):
            assert flag in text, (cmd, flag)
        assert "--trust " not in text and "--trust," not in text  # the old name is hidden
        assert "IMPORTED AND RUN" in text and "every size at least 1" in text
        assert "Repeat it once per model input" in text and "runs code" in text


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_every_command_loads_through_the_one_loader(
    cmd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = _run(cmd, str(tmp_path / "missing.onnx"), "--trust-model", "--dtype", "int64")
    assert code == 1 and "model file not found" in out and "No such option" not in out
    code, out = _run(cmd, str(tmp_path / "missing.onnx"), "--trust")  # deprecated alias
    assert code == 1 and "--trust is deprecated; use --trust-model" in out
    assert "model file not found" in out


def test_a_factory_without_shape_gets_the_same_message_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny_factory.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Linear(4, 2)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    outcomes = {cmd: _run(cmd, "tiny_factory:build") for cmd in COMMANDS}
    messages = {out.strip().splitlines()[-1] for _, out in outcomes.values()}
    assert {code for code, _ in outcomes.values()} == {1} and len(messages) == 1, outcomes
    assert "is a Python model: pass --input-shape" in messages.pop()
