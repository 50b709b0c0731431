"""One module-path → namespace rule for every source, the aggregates and the overlays."""

from __future__ import annotations

import pytest

from deepscope.graph.namespace import module_namespace, owner_namespace


@pytest.mark.parametrize(
    ("path", "namespace"),
    [
        ("", ""),
        ("fc", "fc"),
        ("layer1.0.conv1", "layer1/0/conv1"),
        ("encoder/block_1/dense", "encoder/block_1/dense"),  # Keras/TF names keep their parts
        ("model.layers/0", "model/layers/0"),
    ],
)
def test_module_namespace(path: str, namespace: str) -> None:
    assert module_namespace(path) == namespace


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("bias", ""),  # a parameter of the model itself belongs to the root group
        ("fc.weight", "fc"),
        ("layer1.0.conv1.weight", "layer1/0/conv1"),
        ("dense/kernel", "dense"),
    ],
)
def test_owner_namespace(name: str, owner: str) -> None:
    assert owner_namespace(name) == owner


def test_traced_nodes_and_weights_only_graph_agree_on_groups() -> None:
    """The same model seen live (fx and hook traces) and as a bare state dict puts each
    parameter in the same group, and no parameter name leaks into a group name."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from deepscope.sources.summary import weights_graph
    from deepscope.sources.torch_module import graph

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) * self.scale

    model = Net()
    x = torch.zeros(1, 4)
    expected = {"body/0", "body/2", ""}
    for trace in ("fx", "hooks"):
        g = graph(model, x, trace=trace)
        with_params = {n.namespace for n in g.nodes if n.params} | {""}
        assert {"body/0", "body/2"} <= with_params, (trace, with_params)
        assert g.groups[""].params == 4 * 3 + 3 + 3 * 2 + 2 + 2, trace
    wg = weights_graph({k: v for k, v in model.state_dict().items()})
    assert {n.namespace for n in wg.nodes} == expected


def test_collapse_and_the_server_levels_name_groups_alike() -> None:
    """The collapsed graph and the server's graph levels use one group id for a module."""
    from deepscope.graph.collapse import collapse
    from deepscope.graph.ir import Graph, Node
    from deepscope.graph.namespace import group_id, prefixes
    from deepscope.server import graph_index

    assert prefixes("") == [""] and prefixes("a/b") == ["", "a", "a/b"]
    g = Graph(nodes=[Node("n", "relu", namespace="block/0/act")])
    (node,) = collapse(g, 1).nodes
    assert node.id == group_id("block") == graph_index.group_id("block")
