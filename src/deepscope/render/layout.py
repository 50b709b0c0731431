"""A small layered (Sugiyama-style) layout: longest-path layering, dummy nodes on long
edges, a few barycentric ordering sweeps, and coordinates that pull each node toward its
neighbours without overlaps. Top to bottom. Pure Python, linear-ish in nodes + edges.

Example:
    >>> lay = layered_layout(["a", "b"], [("a", "b")], {"a": (80, 30), "b": (80, 30)})
    >>> lay.positions["a"][1] < lay.positions["b"][1]
    True
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

__all__ = ["Layout", "layered_layout"]

Point = tuple[float, float]


@dataclass
class Layout:
    """Node centres, edge polylines (through dummy nodes) and the canvas size."""

    positions: dict[str, Point] = field(default_factory=dict)
    routes: list[tuple[str, str, list[Point]]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def _layers(
    ids: list[str], succ: dict[str, list[str]], pred: dict[str, list[str]]
) -> dict[str, int]:
    indeg = {n: len(pred[n]) for n in ids}
    queue = deque(n for n in ids if indeg[n] == 0)
    layer = {n: 0 for n in ids}
    done: set[str] = set()
    while True:
        while queue:
            n = queue.popleft()
            done.add(n)
            for m in succ[n]:
                layer[m] = max(layer[m], layer[n] + 1)
                indeg[m] -= 1
                if indeg[m] == 0:
                    queue.append(m)
        rest = [n for n in ids if n not in done]
        if not rest:
            return layer
        # a cycle (not expected in a traced graph): release its first node
        indeg[rest[0]] = 0
        queue.append(rest[0])


def layered_layout(
    ids: list[str],
    edges: list[tuple[str, str]],
    sizes: dict[str, tuple[float, float]],
    *,
    h_gap: float = 24.0,
    v_gap: float = 48.0,
    margin: float = 20.0,
    sweeps: int = 4,
) -> Layout:
    """Lay out `ids` joined by `edges` (src, dst); `sizes` gives each node's (w, h)."""
    idset = set(ids)
    edges = [(s, d) for s, d in dict.fromkeys(edges) if s in idset and d in idset and s != d]
    succ: dict[str, list[str]] = defaultdict(list)
    pred: dict[str, list[str]] = defaultdict(list)
    for s, d in edges:
        succ[s].append(d)
        pred[d].append(s)
    layer = _layers(ids, succ, pred)

    # dummy nodes so long edges take part in ordering and bend around nodes
    chains: list[tuple[str, str, list[str]]] = []
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    width_of = {n: sizes[n][0] for n in ids}
    for k, (s, d) in enumerate(edges):
        ls, ld = layer[s], layer[d]
        if ld <= ls:  # a back edge left by cycle breaking: draw it straight
            chains.append((s, d, []))
            continue
        path = [s]
        for i in range(ls + 1, ld):
            dummy = f"\0{k}:{i}"
            layer[dummy] = i
            width_of[dummy] = 4.0
            path.append(dummy)
        path.append(d)
        for a, b in zip(path, path[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
        chains.append((s, d, path[1:-1]))

    rows: dict[int, list[str]] = defaultdict(list)
    for n in ids:
        rows[layer[n]].append(n)
    for _s, _d, dummies in chains:
        for dm in dummies:
            rows[layer[dm]].append(dm)
    nrows = max(rows) + 1 if rows else 0
    order = [rows[i] for i in range(nrows)]

    def bary(row: list[str], nbrs: dict[str, list[str]], pos: dict[str, int]) -> list[str]:
        keyed = []
        for i, n in enumerate(row):
            ps = [pos[m] for m in nbrs[n] if m in pos]
            keyed.append((sum(ps) / len(ps) if ps else float(i), i, n))
        return [n for _, _, n in sorted(keyed)]

    for sweep in range(sweeps):
        rng = range(1, nrows) if sweep % 2 == 0 else range(nrows - 2, -1, -1)
        for i in rng:
            ref = order[i - 1] if sweep % 2 == 0 else order[i + 1]
            pos = {n: j for j, n in enumerate(ref)}
            order[i] = bary(order[i], up if sweep % 2 == 0 else down, pos)

    # y per row from the tallest node in it
    ys: list[float] = []
    y = margin
    for row in order:
        hmax = max((sizes[n][1] for n in row if n in sizes), default=4.0)
        ys.append(y + hmax / 2)
        y += hmax + v_gap
    xs: dict[str, float] = {}
    for row in order:
        want = []
        for n in row:
            ps = [xs[m] for m in up[n] if m in xs]
            want.append(sum(ps) / len(ps) if ps else 0.0)
        placed: list[float] = []
        for j, n in enumerate(row):
            px = want[j]
            if placed:
                prev = row[j - 1]
                px = max(px, placed[-1] + width_of[prev] / 2 + h_gap + width_of[n] / 2)
            placed.append(px)
        for n, px in zip(row, placed, strict=False):
            xs[n] = px
    left = min((xs[n] - width_of[n] / 2 for n in xs), default=0.0)
    shift = margin - left
    out = Layout()
    for n in ids:
        out.positions[n] = (xs[n] + shift, ys[layer[n]])
    right = max((xs[n] + shift + width_of[n] / 2 for n in xs), default=0.0)
    out.width = right + margin
    out.height = y - v_gap + margin if order else 2 * margin
    for s, d, dummies in chains:
        pts = [out.positions[s]] + [(xs[x] + shift, ys[layer[x]]) for x in dummies]
        pts.append(out.positions[d])
        out.routes.append((s, d, pts))
    return out
