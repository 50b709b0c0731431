"""A small layered (Sugiyama-style) layout: longest-path layering, dummy nodes on long
edges, a few barycentric ordering sweeps, and coordinates that pull each node toward its
neighbours without overlaps. Top to bottom. Pure Python.

Two additions keep long graphs drawable:

- `hang` nodes (weights, constants: nodes the graph input does not reach) sit in the layer
  just above their first consumer instead of all in layer 0, where hundreds of them made
  one row tens of thousands of pixels wide with an edge down to each consumer.
- A tall layout is wrapped into side-by-side columns ("newspaper" style, see
  `render.wrap`) so that width / height stays near `aspect`; an edge that leaves the foot of
  one column re-enters at the top of a later one through the gutter between them.

Cost: O(V + E + D) work units plus sorting, where D is the number of dummy nodes (the
summed layer span of the edges); ``Layout.work`` counts them so that tests can check
growth without timing anything.

Example:
    >>> lay = layered_layout(["a", "b"], [("a", "b")], {"a": (80, 30), "b": (80, 30)})
    >>> lay.positions["a"][1] < lay.positions["b"][1]
    True
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from deepscope.render.wrap import Bands, place_bands

__all__ = ["Layout", "layered_layout"]

Point = tuple[float, float]


@dataclass
class Layout:
    """Node centres, edge polylines (through dummy nodes) and the canvas size.

    `columns` is how many columns a tall drawing was wrapped into (1: not wrapped);
    `work` counts the layout's work units (nodes, edges, dummies, ordering and wrapping
    steps), for complexity checks without timing.
    """

    positions: dict[str, Point] = field(default_factory=dict)
    routes: list[tuple[str, str, list[Point]]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    columns: int = 1
    work: int = 0


def _layers(
    ids: list[str], succ: dict[str, list[str]], pred: dict[str, list[str]]
) -> tuple[dict[str, int], list[str]]:
    """Longest-path layers and the topological order they came from."""
    indeg = {n: len(pred[n]) for n in ids}
    queue = deque(n for n in ids if indeg[n] == 0)
    layer = {n: 0 for n in ids}
    done: set[str] = set()
    topo: list[str] = []
    cursor = 0
    while True:
        while queue:
            n = queue.popleft()
            if n in done:
                continue
            done.add(n)
            topo.append(n)
            for m in succ[n]:
                layer[m] = max(layer[m], layer[n] + 1)
                indeg[m] -= 1
                if indeg[m] == 0:
                    queue.append(m)
        while cursor < len(ids) and ids[cursor] in done:
            cursor += 1
        if cursor == len(ids):
            return layer, topo
        # a cycle (not expected in a traced graph): release its first node
        indeg[ids[cursor]] = 0
        queue.append(ids[cursor])


def _hang(
    layer: dict[str, int], topo: list[str], succ: dict[str, list[str]], hang: set[str]
) -> None:
    """Move each `hang` node down to just above its nearest consumer (latest first, so a
    constant feeding a constant follows it down)."""
    for n in reversed(topo):
        if n in hang and succ[n]:
            below = min(layer[m] for m in succ[n]) - 1
            if below > layer[n]:
                layer[n] = below


def layered_layout(
    ids: list[str],
    edges: list[tuple[str, str]],
    sizes: dict[str, tuple[float, float]],
    *,
    h_gap: float = 24.0,
    v_gap: float = 48.0,
    margin: float = 20.0,
    sweeps: int = 4,
    hang: Iterable[str] = (),
    aspect: float | None = None,
) -> Layout:
    """Lay out `ids` joined by `edges` (src, dst); `sizes` gives each node's (w, h).

    `hang`: nodes to place just above their first consumer. `aspect`: wrap a drawing
    taller than about 2 x its width into columns so that width / height nears `aspect`
    (None: never wrap).
    """
    idset = set(ids)
    edges = [(s, d) for s, d in dict.fromkeys(edges) if s in idset and d in idset and s != d]
    succ: dict[str, list[str]] = defaultdict(list)
    pred: dict[str, list[str]] = defaultdict(list)
    for s, d in edges:
        succ[s].append(d)
        pred[d].append(s)
    layer, topo = _layers(ids, succ, pred)
    _hang(layer, topo, succ, set(hang) & idset)
    work = 2 * len(ids) + 2 * len(edges)

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
        work += len(path)
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
            work += len(order[i]) + len(ref)

    heights = [max((sizes[n][1] for n in row if n in sizes), default=4.0) for row in order]
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
        work += len(row) + sum(len(up[n]) for n in row)
    spans = [
        (
            min((xs[n] - width_of[n] / 2 for n in row), default=0.0),
            max((xs[n] + width_of[n] / 2 for n in row), default=0.0),
        )
        for row in order
    ]
    bands = place_bands(spans, heights, v_gap=v_gap, margin=margin, aspect=aspect)
    work += bands.work
    return _finish(ids, layer, xs, chains, bands, work)


def _finish(
    ids: list[str],
    layer: dict[str, int],
    xs: dict[str, float],
    chains: list[tuple[str, str, list[str]]],
    bands: Bands,
    work: int,
) -> Layout:
    def at(n: str) -> Point:
        r = layer[n]
        return (xs[n] + bands.dx[r], bands.y[r])

    out = Layout(width=bands.width, height=bands.height, columns=bands.columns, work=work)
    for n in ids:
        out.positions[n] = at(n)
    for s, d, dummies in chains:
        path = [s, *dummies, d]
        pts = [at(s)]
        for a, b in zip(path, path[1:], strict=False):
            ra, rb = layer[a], layer[b]
            ba, bb = bands.band_of[ra], bands.band_of[rb]
            if ba != bb and rb > ra:  # leave the column at its foot, enter the next at its top
                xa, _ = pts[-1]
                xb, _ = at(b)
                foot = bands.foot[ba]
                gutter = bands.gutter[ba]
                pts += [(xa, foot), (gutter, foot), (gutter, bands.top), (xb, bands.top)]
                out.work += 4
            pts.append(at(b))
        out.routes.append((s, d, pts))
        out.work += len(pts)
    return out
