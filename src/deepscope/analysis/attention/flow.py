"""Attention flow (Abnar & Zuidema, 2020): attention as a flow network through the layers.

The nodes are the tokens at every layer boundary (the input, then the output of each
layer). Token i of layer l+1 is joined to token j of layer l by an edge of capacity
``Â_l[i, j]``, where ``Â_l = 0.5 · A_l + 0.5 · I`` (heads fused, the residual path added,
rows renormalised, as in rollout). The flow from output token i to input token j is the
maximum flow from the top node i to the bottom node j; each output row is then normalised
to sum to 1, as in the authors' code. Rollout multiplies the layers (every path counts);
flow lets one path's capacity bound it (only the narrowest edge counts).

Every value is one exact maximum flow (Dinic's algorithm on the layered graph, float64),
so the cost grows as tokens² flows × (layers · tokens²) edges: `MAX_WORK` bounds
tokens⁴ · layers (5·10⁶: about 16 tokens × 76 layers, 24 × 15 or 32 × 4, tens of seconds
in pure Python at the limit), with a clear error above.

Example:
    >>> import torch
    >>> w = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    >>> attention_flow([w]).numpy().round(3).tolist()
    [[1.0, 0.0], [0.25, 0.75]]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from deepscope.analysis.attention.rollout import fuse_heads
from deepscope.errors import DeepscopeError

MAX_WORK = 5_000_000
_EPS = 1e-12


class FlowNetwork:
    """A directed graph with float capacities and an exact maximum flow (Dinic)."""

    def __init__(self, n_nodes: int) -> None:
        self.n = n_nodes
        self.head: list[list[int]] = [[] for _ in range(n_nodes)]  # edge ids leaving a node
        self.to: list[int] = []
        self.cap: list[float] = []

    def add_edge(self, u: int, v: int, capacity: float) -> None:
        """An edge u → v of `capacity` (and its residual twin v → u of 0)."""
        if capacity <= 0.0:
            return
        self.head[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(float(capacity))
        self.head[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0.0)

    def max_flow(self, source: int, sink: int) -> float:
        """The value of a maximum flow from `source` to `sink` (capacities are not changed)."""
        if source == sink:
            raise DeepscopeError("max_flow needs two different nodes")
        cap = list(self.cap)
        total = 0.0
        while True:
            level = self._levels(cap, source)
            if level[sink] < 0:
                return total
            nxt = [0] * self.n
            while True:
                pushed = self._push(cap, level, nxt, source, sink, float("inf"))
                if pushed <= _EPS:
                    break
                total += pushed

    def _levels(self, cap: list[float], source: int) -> list[int]:
        level = [-1] * self.n
        level[source] = 0
        queue = deque([source])
        while queue:
            u = queue.popleft()
            for e in self.head[u]:
                v = self.to[e]
                if cap[e] > _EPS and level[v] < 0:
                    level[v] = level[u] + 1
                    queue.append(v)
        return level

    def _push(
        self, cap: list[float], level: list[int], nxt: list[int], u: int, sink: int, f: float
    ) -> float:
        if u == sink:
            return f
        edges = self.head[u]
        while nxt[u] < len(edges):
            e = edges[nxt[u]]
            v = self.to[e]
            if cap[e] > _EPS and level[v] == level[u] + 1:
                pushed = self._push(cap, level, nxt, v, sink, min(f, cap[e]))
                if pushed > _EPS:
                    cap[e] -= pushed
                    cap[e ^ 1] += pushed
                    return pushed
            nxt[u] += 1
        return 0.0


def residual_layers(
    layers: Sequence[torch.Tensor], head_fusion: str = "mean"
) -> list[torch.Tensor]:
    """Per layer the (L, L) float64 ``0.5 · A + 0.5 · I`` (heads fused, rows renormalised)."""
    out = []
    for w in layers:
        if w.dim() != 3 or w.shape[1] != w.shape[2]:
            raise DeepscopeError(
                f"attention flow needs square (heads, L, L) self-attention weights over every "
                f"query, got {tuple(w.shape)}; capture without queries= and on self-attention"
            )
        a = fuse_heads(w.to(torch.float64), head_fusion)
        a = a + torch.eye(a.shape[0], dtype=a.dtype)
        out.append(a / a.sum(dim=-1, keepdim=True))
    return out


def flow_network(mats: Sequence[torch.Tensor]) -> FlowNetwork:
    """The layered graph: node ``l · L + i`` is token i after l layers (0 = the input); an
    edge from token i of layer l+1 down to token j of layer l has capacity ``mats[l][i, j]``."""
    n = mats[0].shape[0]
    net = FlowNetwork((len(mats) + 1) * n)
    for layer, a in enumerate(mats):
        rows = a.tolist()
        for i in range(n):
            for j in range(n):
                net.add_edge((layer + 1) * n + i, layer * n + j, rows[i][j])
    return net


def attention_flow(
    layers: Sequence[torch.Tensor],
    head_fusion: str = "mean",
    *,
    max_work: int = MAX_WORK,
    normalize: bool = True,
) -> torch.Tensor:
    """Attention flow of per-layer (heads, L, L) weights in forward order: (L, L) float64
    whose row i is the maximum flow from output token i to each input token, normalised to
    sum to 1 (``normalize=False`` keeps the raw flow values). `max_work` bounds L⁴ · layers."""
    if not layers:
        raise DeepscopeError("attention flow needs at least one layer of attention weights")
    mats = residual_layers(layers, head_fusion)
    n = mats[0].shape[0]
    edges = len(mats) * n * n
    if n * n * edges > max_work:
        raise DeepscopeError(
            f"attention flow over {n} tokens and {len(mats)} layers needs {n * n} exact "
            f"max-flows on a graph of {edges} edges: tokens⁴ · layers = {n * n * edges} is "
            f"over max_work={max_work} (minutes in pure Python); use result.rollout(), pass "
            "fewer layers=, capture a shorter input, or raise max_work= to wait"
        )
    net = flow_network(mats)
    top = len(mats) * n
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            out[i, j] = net.max_flow(top + i, j)
    if normalize:
        out = out / out.sum(dim=-1, keepdim=True).clamp_min(_EPS)
    return out
