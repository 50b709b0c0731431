"""Graph IR (stdlib only).

``import deepscope`` makes this package callable: ``deepscope.graph(model, example_inputs)``
builds a `Graph` (see `deepscope.sources.graph`), while ``deepscope.graph.Graph`` and
``deepscope.graph.serialize`` are the IR.
"""

from deepscope.graph.ir import SCHEMA_VERSION, Edge, Graph, GroupStats, Node, ParamRef, TensorMeta

__all__ = ["SCHEMA_VERSION", "Edge", "Graph", "GroupStats", "Node", "ParamRef", "TensorMeta"]
