"""Graph IR (stdlib only)."""

from deepscope.graph.ir import SCHEMA_VERSION, Edge, Graph, GroupStats, Node, ParamRef, TensorMeta

__all__ = ["SCHEMA_VERSION", "Edge", "Graph", "GroupStats", "Node", "ParamRef", "TensorMeta"]
