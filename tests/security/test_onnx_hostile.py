"""M11/M12 for ONNX: local-function fan-out, malformed fields, mutated files, the CLI."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from deepscope.errors import ModelFormatError  # noqa: E402
from deepscope.sources import _limits, onnx_file  # noqa: E402
from deepscope.sources._onnx_functions import expanded_nodes  # noqa: E402

_OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]


def _fanout(levels: int, calls: int, *, self_call: bool = False) -> onnx.ModelProto:
    """f0 = Relu; f(i) calls f(i-1) `calls` times in a chain; the graph calls f(levels)."""
    funcs = [
        helper.make_function(
            "local", "f0", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])], _OPSETS
        )
    ]
    for i in range(1, levels + 1):
        callee = f"f{i}" if self_call else f"f{i - 1}"
        names = ["x"] + [f"t{j}" for j in range(calls - 1)] + ["y"]
        nodes = [
            helper.make_node(callee, [names[j]], [names[j + 1]], domain="local")
            for j in range(calls)
        ]
        funcs.append(helper.make_function("local", f"f{i}", ["x"], ["y"], nodes, _OPSETS))
    graph = helper.make_graph(
        [
            helper.make_node(f"f{levels}", ["x"], ["t"], domain="local", name="call"),
            helper.make_node("Relu", ["t"], ["y"], name="last"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, functions=funcs, opset_imports=_OPSETS)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())  # onnx.save would write external data
    return path


def test_M11_expanded_nodes_counts_every_inlined_call() -> None:
    model = _fanout(3, 4)  # 2 graph nodes; 4 + 16 + 64 calls inlined; 64 Relus
    assert expanded_nodes(model, 10**6) == 2 + (4 + 16 + 64) + 4**3
    assert expanded_nodes(_fanout(40, 4), 1000) == 1001  # saturates, never expands


def test_M11_onnx_function_fanout_is_not_expanded(tmp_path: Path) -> None:
    path = _save(_fanout(40, 4), tmp_path / "fan.onnx")  # 4**40 nodes once inlined
    assert path.stat().st_size < 8000
    model = onnx_file.load(path)
    assert any("functions expand" in note for note in model.notes)
    call = next(n for n in model.graph.nodes if n.label == "call")
    assert call.op == "f40" and call.attrs["domain"] == "local"


def test_M11_onnx_functions_are_inferred_in_the_sandbox_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("shape inference ran in the main process")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", refuse)
    path = _save(_fanout(4, 3), tmp_path / "small.onnx")  # 81 Relus: within the budget
    model = onnx_file.load(path)
    assert model.notes == []
    call = next(n for n in model.graph.nodes if n.label == "call")
    assert call.outputs[0].shape == (2, 3)  # only inference (in the child) knows this


def test_M11_slow_inference_in_the_child_still_gives_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_limits, "ONNX_INFER_TIMEOUT_S", 0.05)
    model = onnx_file.load(_save(_fanout(6, 3), tmp_path / "slow.onnx"))
    assert any("timeout" in note for note in model.notes)
    assert {n.label for n in model.graph.nodes} >= {"call", "last"}


def test_M11_recursive_onnx_function_is_a_format_error(tmp_path: Path) -> None:
    path = _save(_fanout(2, 2, self_call=True), tmp_path / "rec.onnx")
    with pytest.raises(ModelFormatError, match="calls itself"):
        onnx_file.load(path)


# --- M12: malformed fields ---------------------------------------------------------------


def _model(init: onnx.TensorProto, node_name: str = "add") -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name=node_name)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [init],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _tensor(data_type: int, dims: list[int], external: bool) -> onnx.TensorProto:
    t = onnx.TensorProto(name="w", data_type=data_type, dims=dims)
    if external:
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="w.bin")
    else:
        t.raw_data = b"\0" * 16
    return t


MALFORMED = {
    "type-999": (999, [4], "data type 999"),
    "type-0": (0, [4], "data type 0"),
    "string-external": (TensorProto.STRING, [4], "string tensors"),
    "negative-dim": (TensorProto.FLOAT, [-1, 4], "negative dimension"),
    "huge-dim": (TensorProto.FLOAT, [0, 2**62], "over 2\\*\\*50"),
    "huge-tensor": (TensorProto.FLOAT, [2**31, 2**31], "more than any real model"),
    "past-the-file": (TensorProto.FLOAT, [1000], "shorter|need"),
}


@pytest.mark.parametrize(
    "case, external",
    [(c, e) for c in sorted(MALFORMED) for e in (True, False) if c != "string-external" or e],
)
def test_M12_malformed_initializers_give_the_reason(
    tmp_path: Path, case: str, external: bool
) -> None:
    data_type, dims, reason = MALFORMED[case]
    (tmp_path / "w.bin").write_bytes(b"\0" * 64)
    path = _save(_model(_tensor(data_type, dims, external)), tmp_path / "m.onnx")
    with pytest.raises(ModelFormatError, match=reason):
        onnx_file.load(path)


def test_M12_invalid_utf8_node_name_gives_the_reason(tmp_path: Path) -> None:
    data = _model(_tensor(TensorProto.FLOAT, [4], False), "nnnn").SerializeToString()
    path = tmp_path / "utf.onnx"
    path.write_bytes(data.replace(b"nnnn", b"n\xff\xfen"))
    with pytest.raises(ModelFormatError, match="node 0 name is not valid UTF-8"):
        onnx_file.load(path)


def test_M12_sub_byte_external_tensors_read_their_packed_size(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(bytes([0x21, 0x43]))  # int4 values 1, 2, 3, 4
    t = _tensor(TensorProto.INT4, [4], True)
    model = onnx_file.load(_save(_model(t), tmp_path / "m.onnx"))
    assert model.weights["w"].values.astype(int).tolist() == [1, 2, 3, 4]


# --- M12: mutation fuzz --------------------------------------------------------------------


def _valid(tmp_path: Path) -> onnx.ModelProto:
    init = onnx.numpy_helper.from_array(__import__("numpy").arange(4, dtype="float32"), "w")
    sub = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="inner")],
        "then",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [4])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x4", "k"], ["c"], name="/conv/Conv", pads=[1, 1]),
            helper.make_node("Add", ["x", "w"], ["y0"], name="/add/Add"),
            helper.make_node("If", ["cond"], ["y"], name="if", then_branch=sub, else_branch=sub),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
            helper.make_tensor_value_info("x4", TensorProto.FLOAT, [1, 1, 3, 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [
            init,
            onnx.numpy_helper.from_array(__import__("numpy").ones((1, 1, 3, 3), "float32"), "k"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _load_typed(path: Path) -> None:
    try:
        onnx_file.load(path)
    except ModelFormatError:
        pass  # UnsafeModelError is a subclass: both are the typed, reasoned outcomes


def test_M12_byte_mutations_give_only_typed_errors(tmp_path: Path) -> None:
    data = _valid(tmp_path).SerializeToString()
    rng = random.Random(12)
    path = tmp_path / "m.onnx"
    for _ in range(150):
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        path.write_bytes(bytes(b))
        _load_typed(path)


def test_M12_field_mutations_give_only_typed_errors(tmp_path: Path) -> None:
    rng = random.Random(7)
    values = [-(2**63), -1, 0, 1, 3, 999, 2**31, 2**62, 2**63 - 1]
    path = tmp_path / "m.onnx"
    (tmp_path / "w.bin").write_bytes(b"\0" * 64)
    for _ in range(80):
        model = _valid(tmp_path)
        t = model.graph.initializer[rng.randrange(2)]
        what = rng.randrange(6)
        if what == 0:
            t.data_type = rng.choice([0, 8, 23, 999, 2**31 - 1])
        elif what == 1:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(values)
        elif what == 2:
            t.data_location = TensorProto.EXTERNAL
            t.external_data.add(key="location", value="w.bin")
            t.external_data.add(key=rng.choice(["offset", "length"]), value=str(rng.choice(values)))
        elif what == 3:
            attr = model.graph.node[0].attribute[0]
            attr.ints[0] = rng.choice(values)
        elif what == 4:
            vi = model.graph.input[rng.randrange(3)].type.tensor_type
            vi.elem_type = rng.choice([0, 999, 8])
            if vi.shape.dim:
                vi.shape.dim[0].dim_value = rng.choice(values)
        else:
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)]
        _save(model, path)
        _load_typed(path)


def test_M12_cli_prints_the_reason_not_a_traceback(tmp_path: Path) -> None:
    from deepscope.cli import main

    (tmp_path / "w.bin").write_bytes(b"\0" * 64)
    path = _save(_model(_tensor(999, [4], True)), tmp_path / "bad.onnx")
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 1
    assert "data type 999" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # click's clean exit, not a crash
