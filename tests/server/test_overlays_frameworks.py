"""Training overlays (#18) on graphs that are not a torch trace: a Keras 3 model (torch
backend) watched by deepscope's Keras callback, and a torch model whose logged graph is its
ONNX export. The values at each node must be the ones measured independently (Keras layer
outputs, each layer called by hand; torch gradient norms after backward), and a watched layer the
exporter fused away must be named in ``unmapped``, not silently dropped."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_support import BASE, strict_loads
from starlette.testclient import TestClient

import deepscope
from deepscope.graph.namespace import module_namespace
from deepscope.server.app import Settings, create_app

torch = pytest.importorskip("torch")
nn = torch.nn


def _get(client: Any, path: str, **query: Any) -> Any:
    r = client.get(path, params=query)
    assert r.status_code == 200, r.text
    return strict_loads(r.text)


def _ids_of(client: Any, run: str) -> dict[str, list[str]]:
    """Namespace -> the op node ids of the run's graph in it."""
    out: dict[str, list[str]] = {}
    for n in _get(client, "/api/graph", run=run)["nodes"]:
        out.setdefault(n["namespace"], []).append(n["id"])
    return out


def test_keras_callback_overlays_map_onto_the_keras_graph(tmp_path: Path) -> None:
    if os.environ.get("KERAS_BACKEND", "torch") != "torch":
        pytest.skip("the Keras watch needs KERAS_BACKEND=torch")
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    from deepscope.tracking.callbacks.keras import DeepscopeCallback

    keras.utils.set_random_seed(0)
    # a layer, a nested Sequential of two (namespaced ``block/...`` in the graph), a layer
    block = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="d_in"),
                              keras.layers.ReLU(name="r_in")], name="block")  # fmt: skip
    inp = keras.Input((6,))
    model = keras.Model(
        inp, keras.layers.Dense(3, name="out")(block(keras.layers.Dense(8, name="d1")(inp)))
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    chain = [("d1", model.get_layer("d1")), ("block/d_in", block.get_layer("d_in")),
             ("block/r_in", block.get_layer("r_in")), ("out", model.get_layer("out"))]  # fmt: skip
    names = [ns for ns, _ in chain]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6)).astype("float32")
    y = rng.standard_normal((24, 3)).astype("float32")
    truth: list[dict[str, float]] = []  # per batch: each layer's output std, before its update

    class Probe(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            h, row = x[batch * 8 : batch * 8 + 8], {}
            for ns, layer in chain:  # the layers called one by one, outside deepscope
                h = layer(h)
                row[ns] = float(np.std(keras.ops.convert_to_numpy(h)))
            truth.append(row)

    cb = DeepscopeCallback(logdir=str(tmp_path), name="keras", watch_every=1)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Probe(), cb])
    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as client:
        ids = _ids_of(client, "keras")
        index = _get(client, "/api/overlays", run="keras")
        assert {"grad_norm", "act_std"} <= {s["name"] for s in index["series"]}
        steps = next(s["steps"] for s in index["series"] if s["name"] == "act_std")
        assert steps == [0, 1, 2]
        for step in steps:
            got = _get(client, "/api/overlays/values", run="keras", series="act_std", step=step)
            assert got["step"] == step
            for name in names:
                (nid,) = ids[name]  # one op per Keras layer, in its layer's namespace
                assert got["values"][nid] == pytest.approx(truth[step][name], rel=1e-4), name
        grads = _get(client, "/api/overlays/values", run="keras", series="grad_norm")["values"]
        assert {n for n in grads if not n.startswith("ns:")} == {
            ids[n][0] for n in ("d1", "block/d_in", "out")
        }  # the layers with weights, and nothing else
        assert grads["ns:block"] == grads[ids["block/d_in"][0]]  # the nested model's group
        (nid,) = ids["block/d_in"]
        node = _get(client, "/api/overlays/node", run="keras", series="act_std", node=nid)
        assert [p["step"] for p in node["points"]] == steps
        assert [p["value"] for p in node["points"]] == pytest.approx(
            [t["block/d_in"] for t in truth], rel=1e-4
        )
        assert node["unmapped"] == []


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: Any) -> Any:
        return self.act(self.bn(self.conv(x))) + x


def test_torch_watch_overlays_map_onto_the_onnx_export_graph(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Sequential(Block(), Block()),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3))  # fmt: skip
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "model.onnx"
    model.eval()  # the exporter folds each BatchNorm into its conv
    torch.onnx.export(model, (x[:1],), str(path), dynamo=False)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    truth: list[dict[str, float]] = []
    with deepscope.init(logdir=tmp_path, name="onnx") as run:
        run.log_graph(str(path))
        run.watch(model, every=1)
        for step in range(3):
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            norms = {}
            for name, m in model.named_modules():
                mats = [p.grad for p in m.parameters(recurse=False) if p.dim() >= 2]
                if mats:
                    norms[module_namespace(name)] = math.sqrt(
                        sum(float(g.pow(2).sum()) for g in mats)
                    )
            truth.append(norms)
            opt.step()
            run.log({"loss": float(loss.detach())}, step=step)
    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as client:
        ids = _ids_of(client, "onnx")
        convs = ["0", "2/0/conv", "2/1/conv", "4"]
        for step in range(3):
            got = _get(client, "/api/overlays/values", run="onnx", series="grad_norm", step=step)
            for ns in convs:
                (nid,) = ids[ns]  # the ONNX node of that module (named /2/0/conv/Conv)
                assert got["values"][nid] == pytest.approx(truth[step][ns], rel=1e-5), ns
                assert got["values"][f"ns:{ns}"] == got["values"][nid]
        node = _get(
            client, "/api/overlays/node", run="onnx", series="grad_norm", node=ids["2/1/conv"][0]
        )
        assert [p["value"] for p in node["points"]] == pytest.approx(
            [t["2/1/conv"] for t in truth], rel=1e-5
        )
        # the BatchNorms were folded into the convs: no node holds them, and the page is told
        assert "2/0/bn" not in ids and "2/1/bn" not in ids
        assert {"2/0/bn", "2/1/bn"} <= set(node["unmapped"])
        assert set(node["unmapped"]) <= {"2/0/bn", "2/1/bn"}
