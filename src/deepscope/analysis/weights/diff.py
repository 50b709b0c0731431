"""Compare two checkpoints or models tensor by tensor.

Tensors are matched by name. `added` / `removed` are names only in b / only in a,
`reshaped` those whose shapes differ, and `changed` every tensor that differs in any way
(added, removed, reshaped, or a value not bit-equal after both are read as numbers; an
int8-quantized torch tensor is dequantized first). For each matching tensor: ‖Δ‖, ‖Δ‖/‖a‖,
cosine(a, b) and max |Δ| (NaN-safe: non-finite entries are left out of the norms).

Example:
    >>> import numpy as np
    >>> d = diff({"w": np.ones(3)}, {"w": np.array([1.0, 1.0, 2.0])})
    >>> d.changed, d.rows["w"]["max_abs"]
    (['w'], 1.0)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.analysis.weights.heatmap import as_matrix, pooled
from deepscope.analysis.weights.result import Weights
from deepscope.render.grid import Grid
from deepscope.render.weights import render_diverging

__all__ = ["WeightsDiff", "diff"]

DIFF_FIELDS = ("norm_delta", "rel_delta", "cosine", "max_abs", "equal")


class WeightsDiff:
    """The result of `diff(a, b)`."""

    def __init__(self, a: Weights, b: Weights) -> None:
        self.a, self.b = a, b
        names_a, names_b = set(a.tensors), set(b.tensors)
        self.added = [n for n in b.tensors if n not in names_a]
        self.removed = [n for n in a.tensors if n not in names_b]
        self.reshaped = [
            n
            for n in a.tensors
            if n in names_b and tuple(a.tensors[n].shape) != tuple(b.tensors[n].shape)
        ]
        self.rows: dict[str, dict[str, Any]] = {}
        for n in a.tensors:
            if n in names_b and n not in self.reshaped:
                self.rows[n] = _compare(a, b, n)
        differ = {n for n, r in self.rows.items() if not r["equal"]}
        every = set(self.added) | set(self.removed) | set(self.reshaped) | differ
        order = [*a.tensors, *self.added]
        self.changed: list[str] = [n for n in order if n in every]

    def __repr__(self) -> str:
        return (
            f"<WeightsDiff changed={len(self.changed)} added={len(self.added)} "
            f"removed={len(self.removed)} reshaped={len(self.reshaped)}>"
        )

    def to_csv(self, path: str | Path | None = None) -> str:
        """One row per tensor: status (same/changed/added/removed/reshaped) and figures."""
        out = io.StringIO()
        w = csv.DictWriter(out, ("name", "status", *DIFF_FIELDS), lineterminator="\n")
        w.writeheader()
        for n in [*self.a.tensors, *self.added]:
            if n in self.rows:
                status = "same" if self.rows[n]["equal"] else "changed"
                w.writerow({"name": n, "status": status, **self.rows[n]})
            else:
                status = (
                    "added" if n in self.added else "removed" if n in self.removed else "reshaped"
                )
                w.writerow({"name": n, "status": status})
        text = out.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def heatmap(self, name: str, *, max_size: int = 1024) -> Grid:
        """Δ = b − a of one matching tensor, as a diverging heatmap (max-|Δ| pooled)."""
        if name not in self.rows:
            raise ValueError(f"{name!r} is not in both models with one shape: no Δ to draw")
        delta = _as_float(self.b.values(name)) - _as_float(self.a.values(name))
        small, fy, fx = pooled(as_matrix(delta), max_size, max_size)
        note = "b - a" + (f", max-|d| pooled {fy}x{fx}" if fy > 1 or fx > 1 else "")
        return render_diverging(small, title=f"delta {name}", note=note)


def _as_float(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _compare(a: Weights, b: Weights, name: str) -> dict[str, Any]:
    ta, tb = a.tensors[name], b.tensors[name]
    if ta.getter is None or tb.getter is None:
        return dict.fromkeys(DIFF_FIELDS) | {"equal": ta.file_stats == tb.file_stats}
    va, vb = _as_float(a.values(name)).reshape(-1), _as_float(b.values(name)).reshape(-1)
    equal = bool(np.array_equal(va, vb, equal_nan=True))
    ok = np.isfinite(va) & np.isfinite(vb)
    fa, fb = va[ok], vb[ok]
    d = fb - fa
    norm_a, norm_b, norm_d = (float(np.linalg.norm(x)) for x in (fa, fb, d))
    return {
        "norm_delta": norm_d,
        "rel_delta": norm_d / norm_a if norm_a > 0 else (0.0 if norm_d == 0 else math.inf),
        "cosine": float(np.dot(fa, fb) / (norm_a * norm_b)) if norm_a and norm_b else math.nan,
        "max_abs": float(np.abs(d).max()) if d.size else 0.0,
        "equal": equal,
    }


def diff(a: Any, b: Any) -> WeightsDiff:
    """Compare two models, checkpoints or files (anything `deepscope.weights` reads)."""
    wa = a if isinstance(a, Weights) else Weights.from_target(a)
    wb = b if isinstance(b, Weights) else Weights.from_target(b)
    return WeightsDiff(wa, wb)
