"""Training overlays on the graph (#18): `run.watch`'s per-layer values, keyed by module
namespace, served by ``/api/overlays*`` on the ids of the run's graph.

The model nests modules (a Sequential of Blocks, each a conv / norm / ReLU plus a residual
add) and has a module owning two matrices, so the mapping is checked where a flat model
would hide mistakes. Expected values are measured independently with torch (gradient norms
after backward, activations by forward hooks), not read from deepscope.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from server_support import BASE, strict_loads
from starlette.testclient import TestClient

import deepscope
from deepscope.graph.namespace import module_namespace
from deepscope.server.app import Settings, create_app
from deepscope.server.graph_index import GraphIndex

torch = pytest.importorskip("torch")
nn = torch.nn

STEPS = 4


class TwoMats(nn.Module):
    """One module owning two matrices directly (its grad norm is over both)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(6, 6) * 0.3)
        self.b = nn.Parameter(torch.randn(6, 6) * 0.3)

    def forward(self, x: Any) -> Any:
        return x @ self.a @ self.b


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: Any) -> Any:
        return self.act(self.bn(self.conv(x))) + x


def make_model() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(Block(), Block()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 6),
        TwoMats(),
    )


class Truth:
    """Per step: torch's own gradient norms (by module) and activation stds."""

    def __init__(self) -> None:
        self.grad: list[dict[str, float]] = []
        self.std: list[dict[str, float]] = []


def train(logdir: Path, *, nan_at: int | None = None) -> tuple[Any, Truth]:
    model = make_model()
    truth = Truth()
    acts: dict[str, float] = {}
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    for name, m in leaves:
        m.register_forward_hook(
            lambda _m, _i, out, name=name: acts.__setitem__(
                name, float(out.detach().std(correction=0))
            )
        )
    poison = {"on": False}  # the Linear's output turns NaN at step `nan_at` (hook before watch's)
    model[5].register_forward_hook(lambda _m, _i, out: out * math.nan if poison["on"] else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    with deepscope.init(logdir=logdir, name="nested") as run:
        run.log_graph(model, x[:1])
        run.watch(model, every=1)
        for step in range(STEPS):
            poison["on"] = nan_at == step
            acts.clear()
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            grads: dict[str, float] = {}
            for name, m in model.named_modules():
                mats = [p.grad for p in m.parameters(recurse=False) if p.dim() >= 2]
                if mats:
                    grads[module_namespace(name)] = math.sqrt(
                        sum(float(g.pow(2).sum()) for g in mats)
                    )
            truth.grad.append(grads)
            truth.std.append({module_namespace(n): v for n, v in acts.items()})
            opt.step()
            run.log({"loss": float(loss.detach())}, step=step)
    return model, truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Truth]:
    logdir = tmp_path_factory.mktemp("overlays")
    model, truth = train(logdir)
    return logdir, model, truth


@pytest.fixture(scope="module")
def client(trained: tuple[Path, Any, Truth]) -> Any:
    with TestClient(create_app(Settings(logdir=trained[0])), base_url=BASE) as c:
        yield c


def get(client: Any, path: str, **query: Any) -> Any:
    r = client.get(path, params=query)
    assert r.status_code == 200, r.text
    return strict_loads(r.text)


def graph_index(client: Any) -> GraphIndex:
    return GraphIndex(get(client, "/api/graph", run="nested"))


def test_namespaces_map_to_the_node_ids_of_nested_modules(client: Any, trained: Any) -> None:
    model = trained[1]
    index = graph_index(client)
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    assert "2.1.conv" in leaves and "6" in leaves
    for name in leaves:
        ns = module_namespace(name)
        ids = index.targets(ns)
        # exactly the nodes of that module: in its namespace, never a neighbour's
        assert ids, name
        assert all(index.ns_of[i] == ns for i in ids), (name, ids)
        assert index.targets(name) == ids  # a module call name maps the same way
    # a parameter name (as gradient events name layers) -> the node using it
    (conv,) = index.targets("2.1.conv.weight")
    assert index.ns_of[conv] == "2/1/conv"
    assert any(p["name"] == "2.1.conv.weight" for p in index.nodes[conv]["params"])
    # a non-leaf module with no parameters of its own -> its group node; unknown -> nothing
    assert index.targets("2/1") == ["ns:2/1"]
    assert index.targets("2") == ["ns:2"]
    assert index.targets("nope/7") == [] and index.targets("") == []


def test_values_at_each_step_equal_what_was_logged(client: Any, trained: Any) -> None:
    truth: Truth = trained[2]
    index = graph_index(client)
    listing = get(client, "/api/overlays", run="nested")
    names = [s["name"] for s in listing["series"]]
    assert names[:4] == ["grad_norm", "update_ratio", "dead_frac", "act_std"]
    assert listing["steps"] == list(range(STEPS))
    grad_steps = next(s["steps"] for s in listing["series"] if s["name"] == "grad_norm")
    assert grad_steps == list(range(STEPS))
    seen_two_mats = False
    for step in range(STEPS):
        got = get(client, "/api/overlays/values", run="nested", series="grad_norm", step=step)
        assert got["step"] == step
        values = got["values"]
        for ns, norm in truth.grad[step].items():
            ids = index.targets(ns)
            assert ids and not any(i.startswith("ns:") for i in ids), (ns, ids)
            for nid in ids:  # TwoMats traces to two matmuls: both carry the module's norm
                assert values[nid] == pytest.approx(norm, rel=1e-4), (step, ns)
            seen_two_mats |= ns == "6" and len(ids) == 2
        # a group holds the largest of its members
        inner = [values[i] for ns in ("2/0/conv", "2/1/conv") for i in index.targets(ns)]
        assert values["ns:2"] == pytest.approx(max(inner))
        std = get(client, "/api/overlays/values", run="nested", series="act_std", step=step)
        for ns, value in truth.std[step].items():
            for nid in index.targets(ns):
                assert std["values"][nid] == pytest.approx(value, rel=1e-3), (step, ns)
    assert seen_two_mats
    # two steps differ (the values really are per step), and a step between logged steps
    # or past the last one answers the latest logged step at or before it
    a = get(client, "/api/overlays/values", run="nested", series="grad_norm", step=0)
    b = get(client, "/api/overlays/values", run="nested", series="grad_norm", step=STEPS - 1)
    assert a["values"] != b["values"]
    late = get(client, "/api/overlays/values", run="nested", series="grad_norm", step=10**6)
    assert late["step"] == STEPS - 1 and late["values"] == b["values"]
    early = get(client, "/api/overlays/values", run="nested", series="grad_norm", step=-1)
    assert early["step"] is None and early["values"] == {}


def test_dead_fraction_only_on_relus(client: Any) -> None:
    index = graph_index(client)
    got = get(client, "/api/overlays/values", run="nested", series="dead_frac", step=0)
    ops = {index.nodes[i]["op"] for i in got["values"] if not i.startswith("ns:")}
    assert ops == {"relu"}
    assert all(0.0 <= v <= 1.0 for v in got["values"].values())


def test_an_unknown_series_is_a_clear_404(client: Any) -> None:
    r = client.get("/api/overlays/values", params={"run": "nested", "series": "nope", "step": 0})
    assert r.status_code == 404 and "/api/overlays" in r.json()["error"]["message"]


def test_first_nonfinite_step_and_badges(tmp_path: Path) -> None:
    train(tmp_path, nan_at=2)
    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as c:
        index = GraphIndex(get(c, "/api/graph", run="nested"))
        listing = get(c, "/api/overlays", run="nested")
        assert listing["series"][-1]["name"] == "nonfinite_step"
        bad = [b for b in listing["badges"] if b["kind"] == "nonfinite_activation"]
        assert len(bad) == 1 and bad[0]["step"] == 2
        (linear,) = index.targets("5")
        assert bad[0]["nodes"] == [linear] and bad[0]["namespaces"] == ["5"]
        before = get(c, "/api/overlays/values", run="nested", series="nonfinite_step", step=1)
        assert before["values"] == {}
        at = get(c, "/api/overlays/values", run="nested", series="nonfinite_step", step=2)
        assert at["values"][linear] == 2.0
        # backward carries the NaN upstream: the first conv's gradient is NaN at step 2 too,
        # while the badge names only the layer whose output went NaN first
        assert at["values"][index.targets("0")[0]] == 2.0
        assert all(v == 2.0 for v in at["values"].values())
