"""Per-head statistics: entropy, mean attention distance, "sink" heads, and head clustering.

Each works on (heads, queries, keys) weights with the absolute query positions they came
from (`Attention.queries`), so a capture with ``queries=`` still measures distances right.

Example:
    >>> import torch
    >>> w = torch.eye(3).expand(2, 3, 3)
    >>> [round(s.entropy, 3) for s in head_stats({"l": w}, {"l": [0, 1]}, range(3))]
    [0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from deepscope.errors import DeepscopeError


@dataclass(frozen=True)
class HeadStat:
    """One head: `entropy` (nats, mean over queries of -Σ p log p), `entropy_norm` (that
    over log of each row's number of reachable keys, 0 = one key, 1 = uniform), `distance`
    (mean over queries of Σ p · distance from query to key: token positions, or patch units
    on a patch grid), and `first_mass` (mean weight on key 0)."""

    layer: str
    head: int
    entropy: float
    entropy_norm: float
    distance: float
    first_mass: float

    @property
    def name(self) -> str:
        """``"<layer>/head<i>"``."""
        return f"{self.layer}/head{self.head}"


@dataclass(frozen=True)
class Sink:
    """A head that puts more than the threshold of its mass on `token` (mean over queries
    other than `token` itself): `fraction` is that mean mass."""

    layer: str
    head: int
    token: int
    fraction: float

    @property
    def name(self) -> str:
        """``"<layer>/head<i>"``."""
        return f"{self.layer}/head{self.head}"


@dataclass(frozen=True)
class HeadClusters:
    """Heads grouped by the similarity of their maps: `names` ("layer/headN"), `similarity`
    (cosine of the flattened maps, heads × heads), `order` (indices into `names` with
    similar heads next to each other: the leaf order of average-linkage clustering), and
    `labels` (a cluster number per head when `n_clusters` was given, else all 0)."""

    names: list[str]
    similarity: NDArray[np.float64]
    order: list[int]
    labels: list[int]


def _distances(rows: Sequence[int], n_keys: int, grid: tuple[int, int] | None) -> torch.Tensor:
    """(queries, keys) distances: |i - j| in tokens, or Euclidean in patches when the last
    rows·cols keys are a patch grid (extra leading tokens such as [CLS] count as distance 0)."""
    q = torch.tensor(list(rows), dtype=torch.float64)
    k = torch.arange(n_keys, dtype=torch.float64)
    if grid is None or grid[0] * grid[1] > n_keys:
        return (q[:, None] - k[None, :]).abs()
    extra = n_keys - grid[0] * grid[1]
    p = torch.arange(n_keys) - extra
    rc = torch.stack([p.div(grid[1], rounding_mode="floor"), p % grid[1]], dim=1).double()
    qi = torch.tensor(list(rows))
    d = torch.cdist(rc[qi.clamp_max(n_keys - 1)], rc)
    special = (qi < extra)[:, None] | (torch.arange(n_keys) < extra)[None, :]
    return d.masked_fill(special, 0.0)


def head_stats(
    weights: Mapping[str, torch.Tensor],
    heads: Mapping[str, list[int]],
    queries: Sequence[int],
    grid: tuple[int, int] | None = None,
) -> list[HeadStat]:
    """A `HeadStat` per kept head of every layer, in layer then head order."""
    out: list[HeadStat] = []
    for layer, w in weights.items():
        p = w.to(torch.float64)
        dist = _distances(queries, p.shape[-1], grid)
        logp = torch.where(p > 0, p.log(), torch.zeros_like(p))
        ent = -(p * logp).sum(-1)  # (heads, queries)
        reach = (p > 0).sum(-1).clamp_min(1).to(torch.float64).log()
        norm = torch.where(reach > 0, ent / reach.clamp_min(1e-12), torch.zeros_like(ent))
        mean_dist = (p * dist).sum(-1)
        first = p[..., 0]
        for i, h in enumerate(heads[layer]):
            out.append(
                HeadStat(
                    layer,
                    h,
                    float(ent[i].mean()),
                    float(norm[i].mean()),
                    float(mean_dist[i].mean()),
                    float(first[i].mean()),
                )
            )
    return out


def sinks(
    weights: Mapping[str, torch.Tensor],
    heads: Mapping[str, list[int]],
    queries: Sequence[int],
    threshold: float = 0.5,
    token: int = 0,
) -> list[Sink]:
    """Heads whose mean mass on key `token` exceeds `threshold`, over the queries other than
    `token` itself (which in a causal model can only attend to itself); strongest first."""
    if not 0.0 <= threshold <= 1.0:
        raise DeepscopeError(f"threshold must be in [0, 1], got {threshold}")
    found: list[Sink] = []
    for layer, w in weights.items():
        if not 0 <= token < w.shape[-1]:
            raise DeepscopeError(f"token {token} is outside the {w.shape[-1]} keys")
        rows = [r for r, q in enumerate(queries) if q != token] or list(range(w.shape[1]))
        mass = w[:, rows, token].to(torch.float64).mean(-1)
        for i, h in enumerate(heads[layer]):
            if float(mass[i]) > threshold:
                found.append(Sink(layer, h, token, float(mass[i])))
    return sorted(found, key=lambda s: -s.fraction)


def _average_linkage(sim: NDArray[np.float64], n_clusters: int) -> tuple[list[int], list[int]]:
    """Merge the two most similar clusters (mean pairwise similarity) until one is left;
    returns the leaf order and the labels at `n_clusters` clusters."""
    n = sim.shape[0]
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    link = sim.astype(np.float64).copy()
    np.fill_diagonal(link, -np.inf)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    labels = [0] * n
    if n_clusters >= n:
        labels = list(range(n))
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], link, -np.inf)
        a, b = divmod(int(np.argmax(masked)), n)
        a, b = min(a, b), max(a, b)
        merged = (link[a] * size[a] + link[b] * size[b]) / (size[a] + size[b])
        link[a], link[:, a] = merged, merged
        link[a, a] = -np.inf
        size[a] += size[b]
        alive[b] = False
        members[a] = members[a] + members.pop(b)
        if int(alive.sum()) == n_clusters:
            for c, idx in enumerate(sorted(members.values(), key=min)):
                for m in idx:
                    labels[m] = c
    return members[int(np.flatnonzero(alive)[0])], labels


def cluster_heads(
    weights: Mapping[str, torch.Tensor],
    heads: Mapping[str, list[int]],
    n_clusters: int = 1,
) -> HeadClusters:
    """Cosine similarity of every kept head's flattened map, and an average-linkage order
    (and `n_clusters` labels). All layers must share one (queries, keys) shape."""
    shapes = {tuple(w.shape[1:]) for w in weights.values()}
    if len(shapes) != 1:
        raise DeepscopeError(
            f"head clustering compares maps of one shape; these layers differ: {sorted(shapes)}"
            "; pass layers= with self-attention layers over the same tokens"
        )
    if n_clusters < 1:
        raise DeepscopeError(f"n_clusters must be at least 1, got {n_clusters}")
    flat = torch.cat([w.reshape(w.shape[0], -1).to(torch.float64) for w in weights.values()])
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = (unit @ unit.T).numpy()
    names = [f"{layer}/head{h}" for layer, hs in heads.items() if layer in weights for h in hs]
    order, labels = _average_linkage(sim, n_clusters)
    return HeadClusters(names, sim, order, labels)
