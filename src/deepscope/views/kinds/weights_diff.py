"""The tensor values behind ``deepscope diff A B --serve``: a `WeightsDiff` served to the
dashboard's diff view (changed tensors, graph overlay by relative Δ, Δ heatmaps).

Each tensor's own payload is B's (A's for a removed tensor), from `ModelWeightsSource`;
its `WeightsDiffRow` comes from `WeightsDiff` (`deepscope.diff`); the ``delta`` array is
b − a as a matrix, max-|Δ| pooled like every heatmap (`pooled(as_matrix(...))`).

Example:
    >>> import numpy as np, deepscope
    >>> src = DiffWeightsSource(deepscope.diff({"w": np.ones(2)}, {"w": np.array([1.0, 3.0])}))
    >>> src.table()["diff"][0]["status"], src.array("w", "delta").tolist()
    ('changed', [[0.0, 2.0]])
"""

from __future__ import annotations

import math
import threading
from typing import Any, Literal

from deepscope.views.kinds.weights import MAX_SIDE, ModelWeightsSource

__all__ = ["DiffWeightsSource", "diff_rows"]


def _num(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def diff_rows(result: Any) -> dict[str, dict[str, Any]]:
    """`WeightsDiffRow` of every tensor of a `WeightsDiff`, keyed by name (a's order, then
    the added ones)."""
    a, b = result.a.tensors, result.b.tensors
    out: dict[str, dict[str, Any]] = {}
    for n in [*a, *result.added]:
        row = result.rows.get(n)
        if row is not None:
            status = "same" if row["equal"] else "changed"
        else:
            status = (
                "added" if n in result.added else "removed" if n in result.removed else "reshaped"
            )
        out[n] = {
            "name": n,
            "status": status,
            "normDelta": _num(row["norm_delta"]) if row else None,
            "relDelta": _num(row["rel_delta"]) if row else None,
            "cosine": _num(row["cosine"]) if row else None,
            "maxAbs": _num(row["max_abs"]) if row else None,
            "shapeA": [int(d) for d in a[n].shape] if n in a else None,
            "shapeB": [int(d) for d in b[n].shape] if n in b else None,
        }
    return out


class DiffWeightsSource:
    """`WeightsSource` of a diff: B's tensors (A's where only A has one), their diff rows,
    and Δ heatmaps on demand (the last `max_cached` kept)."""

    mode: Literal["model", "diff"] = "diff"

    def __init__(self, result: Any, *, labels: tuple[str, str] = ("a", "b"),
                 max_side: int = MAX_SIDE, max_cached: int = 16) -> None:  # fmt: skip
        from collections import OrderedDict

        self.result = result
        self.labels = list(labels)
        self.max_side = max_side
        self.max_cached = max_cached
        self.a = ModelWeightsSource(result.a, label=labels[0], max_side=max_side)
        self.b = ModelWeightsSource(result.b, label=labels[1], max_side=max_side)
        self.rows = diff_rows(result)
        self._lock = threading.Lock()
        self._deltas: OrderedDict[str, Any] = OrderedDict()

    def _side(self, name: str) -> ModelWeightsSource:
        return self.b if self.b.readable(name) else self.a

    def tensors(self, names: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Rows of `names` with their diff row; ``delta`` listed for matching tensors."""
        rows, missing = [], []
        for n in names:
            side = self._side(n)
            got, gone = side.tensors([n])
            if gone:
                missing.append(n)
                continue
            row = got[0]
            row["diff"] = self.rows.get(n)
            if n in self.result.rows:
                row["parts"] = [*row["parts"], "delta"]
            rows.append(row)
        return rows, missing

    def table(self, compute: bool = True) -> dict[str, Any]:
        """Every readable tensor's meta (B's, A's for removed ones; with `compute` False only
        those already read) and every diff row."""
        names = [n for n in self.rows if self.b.readable(n) or self.a.readable(n)]
        if not compute:
            names = [n for n in names if n in self._side(n)._meta]
        metas = [self._side(n).meta(n)[0] for n in names]
        return {"mode": "diff", "labels": self.labels, "tensors": metas,
                "diff": list(self.rows.values()), "skipped": len(self.rows) - len(names)}  # fmt: skip

    def array(self, name: str, part: str) -> Any:
        """``delta`` (b − a, pooled) of a matching tensor, or B's/A's ``heatmap``/``filters``."""
        if part != "delta":
            return self._side(name).array(name, part)
        if name not in self.result.rows:
            return None
        with self._lock:
            if name in self._deltas:
                self._deltas.move_to_end(name)
                return self._deltas[name]
        import numpy as np

        from deepscope.analysis.weights.heatmap import as_matrix, pooled

        a = np.asarray(self.result.a.values(name), dtype=np.float64)
        b = np.asarray(self.result.b.values(name), dtype=np.float64)
        small, _, _ = pooled(as_matrix(b - a), self.max_side, self.max_side)
        out = np.asarray(small, dtype=np.float32)
        with self._lock:
            self._deltas[name] = out
            while len(self._deltas) > self.max_cached:
                self._deltas.popitem(last=False)
        return out
