"""The ``weights`` view kind: one named weight tensor of a model at one step.

An item is one tensor of a `Weights` result (`deepscope.weights`): its statistics row and
spectrum summary in `WeightsMeta` (so a whole table travels with ``/api/views/weights``),
a small JSON main blob with the ESD histogram (`WeightsDoc`), and two array parts joined by
``meta.entry`` (the tensor's name):

- ``heatmap``: the tensor as a matrix (`as_matrix`: 2-D as is, conv kernels as
  (out, in·kh·kw), 1-D as a strip), reduced by max-|w| pooling (`pooled`) to at most
  ``max_side`` on a side (default 512), float32 or float16; ``meta.pooled``,
  ``meta.matrixShape`` and ``meta.poolFactor`` say how it was reduced;
- ``filters``: conv kernels with 1 or 3 input channels (first-layer filters) as uint8
  images (filters × kh × kw × 3, each filter stretched to its own min..max by
  `filter_images`), at most `MAX_FILTERS`.

`tensor_entry` builds the payload of one tensor with the analysis functions only (the same
code serves ``run.log_weights`` and ``deepscope view``'s ``/api/model/weights``); the
wire schemas of those model routes live here too. No torch is imported here.

Example:
    >>> from deepscope.views import registry
    >>> sorted(registry.get("weights").parts)
    ['filters', 'heatmap']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from deepscope.views.registry import Part, PartRef, ViewKind, register
from deepscope.views.schema import open_keys

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "KIND",
    "MAX_FILTERS",
    "MAX_SIDE",
    "EsdSummary",
    "ModelWeightsNode",
    "ModelWeightsTable",
    "ModelWeightsTensor",
    "TensorEntry",
    "WeightsDiffRow",
    "WeightsDoc",
    "WeightsItem",
    "WeightsMeta",
    "WeightsParts",
    "WeightsView",
    "ModelWeightsSource",
    "maxabs_downsample",
    "tensor_entry",
]

MAX_SIDE = 512
"""The heatmap's largest side (cells); larger matrices are max-|w| pooled."""
MAX_FILTERS = 256
"""First-layer filters kept as images (the rest are in the heatmap)."""
MAX_SPECTRUM_ELEMENTS = 1 << 24
"""Tensors larger than this get no spectrum by default (a 4096-wide Gram matrix is ~seconds)."""
ESD_BINS = 40


@open_keys
class WeightsMeta(TypedDict):
    """What is logged with each tensor: its statistics (over finite values; null when it
    has none), how its heatmap was reduced, and its spectrum summary (null when none)."""

    entry: str
    layer: str
    shape: list[int]
    dtype: str
    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    absmax: float | None
    zeros: float | None
    l2: float | None
    nan: int
    inf: int
    matrixShape: list[int]
    heatShape: list[int]
    poolFactor: list[int]
    pooled: bool
    heatLimit: float
    filters: int
    spectralNorm: float | None
    stableRank: float | None
    alpha: float | None
    format: Literal["json"]


class EsdSummary(TypedDict):
    """The eigenvalues of WᵀW as a histogram over log10 bins, and the power-law tail fit."""

    log10Edges: list[float]
    counts: list[int]
    n: int
    nonPositive: int
    alpha: float | None
    xmin: float | None
    D: float | None
    nTail: int
    spectralNorm: float
    stableRank: float | None


class WeightsDoc(TypedDict):
    """The main JSON blob of a ``weights`` item."""

    esd: EsdSummary | None


class WeightsParts(TypedDict):
    """The arrays of one tensor (null when not logged)."""

    heatmap: PartRef | None
    filters: PartRef | None


class WeightsItem(TypedDict):
    """One logged tensor."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["json"]
    url: str
    meta: WeightsMeta
    parts: WeightsParts


class WeightsView(TypedDict):
    """``/api/views/weights``: the logged tensors of a run (oldest first)."""

    kind: Literal["weights"]
    run: str
    items: list[WeightsItem]
    skipped: int


class WeightsDiffRow(TypedDict):
    """One tensor of a diff (b − a): its status and, for matching shapes, the figures."""

    name: str
    status: Literal["same", "changed", "added", "removed", "reshaped"]
    normDelta: float | None
    relDelta: float | None
    cosine: float | None
    maxAbs: float | None
    shapeA: list[int] | None
    shapeB: list[int] | None


class ModelWeightsTensor(TypedDict):
    """One tensor of the served model: its meta (as logged) and ESD; arrays by name."""

    name: str
    meta: WeightsMeta
    esd: EsdSummary | None
    diff: WeightsDiffRow | None
    parts: list[Literal["heatmap", "filters", "delta"]]


class ModelWeightsNode(TypedDict):
    """``/api/model/weights?node=``: the parameters of one graph node."""

    node: str
    tensors: list[ModelWeightsTensor]
    missing: list[str]


class ModelWeightsTable(TypedDict):
    """``/api/model/weights/table``: every tensor of the served model (a diff: of b, with
    removed tensors' rows from a), and the diff rows when the server shows a diff."""

    mode: Literal["model", "diff"]
    labels: list[str]
    tensors: list[WeightsMeta]
    diff: list[WeightsDiffRow] | None
    skipped: int


def maxabs_downsample(array: NDArray[Any], max_size: int) -> NDArray[Any]:
    """The kind's ``?maxSize=`` hook: a 2-D heatmap reduced by max-|w| pooling (keeps the
    extremes and their sign, as the logged heatmap was); other arrays as they are."""
    if array.ndim != 2 or max(array.shape) <= max_size:
        return array
    import numpy as np

    from deepscope.analysis.weights.heatmap import pooled

    small, _, _ = pooled(array, max_size, max_size)
    return np.asarray(small, dtype=np.float32)


KIND = register(
    ViewKind(
        name="weights",
        panel="weights",
        meta=WeightsMeta,
        item=WeightsItem,
        response=WeightsView,
        formats=("json",),
        parts={
            "heatmap": Part("weights_heatmap", "array", ("float32", "float16")),
            "filters": Part("weights_filters", "array", ("uint8",)),
        },
        key="entry",
        downsample=maxabs_downsample,
    )
)


@dataclass
class TensorEntry:
    """One tensor's payload: `meta` (`WeightsMeta` less ``format``), `doc` (`WeightsDoc`)
    and its arrays by part name."""

    meta: dict[str, Any]
    doc: dict[str, Any]
    arrays: dict[str, NDArray[Any]] = field(default_factory=dict)


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def esd_summary(spec: Any, bins: int = ESD_BINS) -> dict[str, Any]:
    """`EsdSummary` of a `deepscope.analysis.weights.Spectrum`."""
    import numpy as np

    ev = np.asarray(spec.evals, dtype=np.float64)
    pos = ev[np.isfinite(ev) & (ev > 0)]
    edges: list[float] = []
    counts: list[int] = []
    if pos.size:
        logs = np.log10(pos)
        lo, hi = float(logs.min()), float(logs.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        c, e = np.histogram(logs, bins=bins, range=(lo, hi))
        edges, counts = [float(x) for x in e], [int(x) for x in c]
    fit = spec.fit
    return {
        "log10Edges": edges,
        "counts": counts,
        "n": int(ev.size),
        "nonPositive": int(ev.size - pos.size),
        "alpha": _finite(fit.alpha),
        "xmin": _finite(fit.xmin),
        "D": _finite(fit.D),
        "nTail": int(fit.n_tail),
        "spectralNorm": float(spec.spectral_norm),
        "stableRank": _finite(spec.stable_rank),
    }


def has_spectrum(
    shape: tuple[int, ...], max_elements: int = MAX_SPECTRUM_ELEMENTS, max_side: int | None = None
) -> bool:
    """Whether a tensor of `shape` gets a spectrum (a 2-D+ weight, neither side 1, at most
    `max_elements`, and its Gram matrix at most `max_side` wide when given)."""
    if len(shape) < 2 or min(shape[:2]) <= 1 or math.prod(shape) > max_elements:
        return False
    return max_side is None or min(shape[:2]) <= max_side


def tensor_entry(
    result: Any,
    name: str,
    *,
    max_side: int = MAX_SIDE,
    spectra: bool = True,
    heat_dtype: Literal["float32", "float16"] = "float32",
    max_filters: int = MAX_FILTERS,
    max_spectrum_side: int | None = None,
) -> TensorEntry:
    """The payload of tensor `name` of `result` (a `Weights`): statistics
    (`tensor_stats`), the max-|w| pooled heatmap (`pooled(as_matrix(values))`), filter
    images for 1- or 3-channel conv kernels (`filter_images`) and the spectrum
    (`spectrum`) when `spectra` and `has_spectrum`. Reads the tensor once."""
    import numpy as np

    from deepscope.analysis.weights.filters import filter_images
    from deepscope.analysis.weights.heatmap import as_matrix, pooled
    from deepscope.analysis.weights.result import layer_of
    from deepscope.analysis.weights.stats import tensor_stats

    ref = result.tensors[name]
    values = np.asarray(result.values(name))
    stats = tensor_stats(values)
    shape = [int(d) for d in values.shape]
    matrix = as_matrix(values)
    meta: dict[str, Any] = {
        "entry": name,
        "layer": layer_of(name),
        "shape": shape,
        "dtype": str(ref.dtype),
        "count": int(stats["count"]),
        **{k: _finite(stats[k]) for k in ("mean", "std", "min", "max", "absmax", "zeros", "l2")},
        "nan": int(stats["nan"]),
        "inf": int(stats["inf"]),
        "matrixShape": [int(d) for d in matrix.shape],
        "heatShape": [0, 0],
        "poolFactor": [1, 1],
        "pooled": False,
        "heatLimit": 0.0,
        "filters": 0,
        "spectralNorm": None,
        "stableRank": None,
        "alpha": None,
    }
    arrays: dict[str, NDArray[Any]] = {}
    if matrix.size:
        small, fy, fx = pooled(matrix, max_side, max_side)
        heat = np.asarray(small, dtype=heat_dtype)
        finite = np.abs(small[np.isfinite(small)])
        meta.update(
            heatShape=[int(d) for d in heat.shape],
            poolFactor=[int(fy), int(fx)],
            pooled=bool(fy > 1 or fx > 1),
            heatLimit=float(finite.max()) if finite.size else 0.0,
        )
        arrays["heatmap"] = heat
    if values.ndim == 4 and values.shape[1] in (1, 3) and values.size:
        images = filter_images(values[:max_filters])
        arrays["filters"] = images
        meta["filters"] = int(images.shape[0])
    doc: dict[str, Any] = {"esd": None}
    if spectra and has_spectrum(tuple(shape), max_side=max_spectrum_side) and values.size:
        from deepscope.analysis.weights.spectra import spectrum

        spec = spectrum(values)  # the values already read (`result.spectra` would reread)
        doc["esd"] = esd_summary(spec)
        meta.update(
            spectralNorm=_finite(spec.spectral_norm),
            stableRank=_finite(spec.stable_rank),
            alpha=_finite(spec.alpha),
        )
    return TensorEntry(meta, doc, arrays)


def parts_of(meta: dict[str, Any]) -> list[str]:
    """The array parts a tensor with `meta` has."""
    return [p for p, has in (("heatmap", meta["heatShape"][0] > 0), ("filters", meta["filters"] > 0))
            if has]  # fmt: skip


class ModelWeightsSource:
    """The tensor values behind ``deepscope view MODEL``: payloads of a `Weights` result
    computed on demand by `tensor_entry` (each tensor read when first asked for), the small
    figures kept, the arrays of the last `max_cached` tensors kept. Thread-safe. The server
    sees it through `deepscope.server.settings.WeightsSource` and never imports torch.
    Spectra are computed on a click only for weights whose Gram matrix is at most
    `max_spectrum_side` wide (default 1024; measured on a loaded 2-core machine: a
    1024 x 3072 weight 5 s, a 2048 x 2048 one 34 s); `deepscope weights MODEL -o DIR`
    computes all of them.

    Example:
        >>> import numpy as np, deepscope
        >>> src = ModelWeightsSource(deepscope.weights({"fc.weight": np.eye(2)}))
        >>> src.tensors(["fc.weight"])[0][0]["meta"]["l2"]
        1.4142135623730951
    """

    mode: Literal["model", "diff"] = "model"

    def __init__(self, result: Any, *, label: str = "", max_side: int = MAX_SIDE,
                 max_cached: int = 32, max_spectrum_side: int | None = 1024) -> None:  # fmt: skip
        import threading
        from collections import OrderedDict

        self.result = result
        self.labels = [label or str(getattr(result, "source", ""))]
        self.max_side = max_side
        self.max_cached = max_cached
        self.max_spectrum_side = max_spectrum_side
        self._lock = threading.Lock()
        self._meta: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._arrays: OrderedDict[str, dict[str, NDArray[Any]]] = OrderedDict()

    def names(self) -> list[str]:
        """Every tensor name, in the model's order."""
        return list(self.result.tensors)

    def readable(self, name: str) -> bool:
        """Whether tensor `name` exists and its values can be read."""
        ref = self.result.tensors.get(name)
        return ref is not None and ref.getter is not None and 0 not in tuple(ref.shape)

    def entry(self, name: str) -> TensorEntry:
        """The payload of tensor `name` (computed once, arrays cached LRU)."""
        with self._lock:
            hit = self._arrays.get(name)
            if hit is not None:
                self._arrays.move_to_end(name)
                return TensorEntry(self._meta[name][0], self._meta[name][1], hit)
        entry = tensor_entry(
            self.result, name, max_side=self.max_side, max_spectrum_side=self.max_spectrum_side
        )
        with self._lock:
            self._meta[name] = (entry.meta, entry.doc)
            self._arrays[name] = entry.arrays
            while len(self._arrays) > self.max_cached:
                self._arrays.popitem(last=False)
        return entry

    def meta(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """`WeightsMeta` (with ``format``) and `WeightsDoc` of tensor `name`."""
        if name not in self._meta:
            self.entry(name)
        meta, doc = self._meta[name]
        return {**meta, "format": "json"}, doc

    def tensors(self, names: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """`ModelWeightsTensor` rows of the readable tensors among `names`, and the names
        that are not (unknown, empty, or values not readable)."""
        rows, missing = [], []
        for n in names:
            if not self.readable(n):
                missing.append(n)
                continue
            meta, doc = self.meta(n)
            parts = parts_of(meta)
            rows.append({"name": n, "meta": meta, "esd": doc["esd"], "diff": None,
                         "parts": parts})  # fmt: skip
        return rows, missing

    def table(self, compute: bool = True) -> dict[str, Any]:
        """`ModelWeightsTable` of every readable tensor (each read once, then cached); with
        `compute` False only of those already read (cheap: reads nothing)."""
        names = [n for n in self.names() if self.readable(n) and (compute or n in self._meta)]
        metas = [self.meta(n)[0] for n in names]
        return {"mode": "model", "labels": self.labels, "tensors": metas, "diff": None,
                "skipped": len(self.result.tensors) - len(names)}  # fmt: skip

    def array(self, name: str, part: str) -> NDArray[Any] | None:
        """Array `part` (``heatmap`` / ``filters``) of tensor `name`; None when it has none."""
        if not self.readable(name):
            return None
        return self.entry(name).arrays.get(part)
