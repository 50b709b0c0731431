"""`Weights`: statistics, heatmaps, filter grids and spectra of a model's named tensors.

Example:
    >>> import numpy as np
    >>> w = Weights.from_target({"fc.weight": np.eye(3), "fc.bias": np.zeros(3)})
    >>> w.stats()["fc.weight"]["l2"]
    1.7320508075688772
"""

from __future__ import annotations

import csv
import io
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepscope.analysis.weights.collect import TensorRef, collect
from deepscope.analysis.weights.filters import filter_grid
from deepscope.analysis.weights.heatmap import BF16_INF, as_matrix, canonical, pool_bits, pooled
from deepscope.analysis.weights.spectra import Spectrum, spectrum
from deepscope.analysis.weights.stats import STAT_FIELDS, StatsAccumulator, accumulate
from deepscope.errors import NotFoundError
from deepscope.render.grid import Grid
from deepscope.render.weights import render_diverging, render_esd

__all__ = ["Weights", "layer_of"]

CSV_FIELDS = ("kind", "name", "shape", "dtype", *STAT_FIELDS)


def layer_of(name: str) -> str:
    """The layer (module path) a tensor belongs to: ``features.0.weight`` → ``features.0``."""
    return name.rsplit(".", 1)[0] if "." in name else ""


class Weights:
    """Every named tensor of a model; figures computed on first use and cached."""

    def __init__(self, tensors: list[TensorRef], source: str = "", notes: list[str] | None = None):
        self.tensors: dict[str, TensorRef] = {t.name: t for t in tensors}
        #: The lazy store the tensors are read from (model files), else None.
        self.store = next((t.store for t in tensors if t.store is not None), None)
        self.source = source
        self.notes = list(notes or [])
        self._acc: dict[str, StatsAccumulator] = {}
        self._spectra: dict[str, Spectrum] = {}

    @classmethod
    def from_target(cls, target: Any) -> Weights:
        """Read `target` (see `deepscope.weights`)."""
        refs, source, notes = collect(target)
        return cls(refs, source, notes)

    def __repr__(self) -> str:
        return f"<Weights {self.source}: {len(self.tensors)} tensors>"

    def _ref(self, name: str) -> TensorRef:
        if name not in self.tensors:
            near = ", ".join(list(self.tensors)[:8])
            raise NotFoundError(f"no tensor named {name!r}; tensors include: {near}")
        return self.tensors[name]

    def values(self, name: str) -> np.ndarray:
        """One tensor's values as numpy (torch layout: Keras kernels transposed)."""
        ref = self._ref(name)
        return canonical(ref.values(), ref.layout)

    # statistics -------------------------------------------------------------------------

    def _accumulator(self, name: str) -> StatsAccumulator | None:
        if name not in self._acc:
            ref = self.tensors[name]
            if ref.store is not None:  # chunks read from the file: bounded memory
                store = ref.store
                self._acc[name] = accumulate(
                    None,
                    fetch=partial(store.fetch, name),
                    size=math.prod(ref.shape),
                    decode=store.decoder(name),
                )
            elif ref.getter is None:
                return None
            else:
                self._acc[name] = accumulate(ref.values())
        return self._acc[name]

    def _stream_stored(self) -> None:
        """Statistics of every file-backed tensor not computed yet, in one sequential pass
        over the file (`_stream.stream_accumulate`: reads overlap the counting)."""
        from deepscope.analysis.weights._stream import StreamJob, stream_accumulate

        jobs = []
        for name, ref in self.tensors.items():
            if ref.store is None or name in self._acc:
                continue
            store = ref.store
            info = store.info(name)
            fd, offset = store.descriptor(name) or (-1, 0)
            jobs.append(
                (
                    (str(info.file), info.offset if info.offset is not None else -1),
                    StreamJob(
                        name,
                        math.prod(ref.shape),
                        store.stored_dtype(name),
                        partial(store.fetch, name),
                        store.decoder(name),
                        fd,
                        offset,
                        ref.dtype,
                    ),
                )
            )
        jobs.sort(key=lambda j: j[0])  # file order: one sequential read
        self._acc.update(stream_accumulate(job for _, job in jobs))

    def _row(self, ref: TensorRef) -> dict[str, Any]:
        acc = self._accumulator(ref.name)
        stats = acc.result() if acc else _from_file_stats(ref)
        return {"shape": ref.shape, "dtype": ref.dtype, **stats}

    def stats(self) -> dict[str, dict[str, Any]]:
        """One row per tensor, keyed by name: shape, dtype and `STAT_FIELDS`."""
        self._stream_stored()
        return {name: self._row(ref) for name, ref in self.tensors.items()}

    def layer_stats(self) -> dict[str, dict[str, Any]]:
        """The same figures per layer (every tensor of one module path together)."""
        self._stream_stored()
        groups: dict[str, StatsAccumulator] = {}
        for name in self.tensors:
            acc = self._accumulator(name)
            if acc is not None:
                groups.setdefault(layer_of(name), StatsAccumulator()).merge(acc)
        return {layer: acc.result() for layer, acc in groups.items()}

    def total(self) -> dict[str, Any]:
        """The same figures over every readable tensor of the model."""
        self._stream_stored()
        acc = StatsAccumulator()
        for name in self.tensors:
            part = self._accumulator(name)
            if part is not None:
                acc.merge(part)
        return acc.result()

    def to_csv(self, path: str | Path | None = None) -> str:
        """Tensor rows, then layer rows, then a total row, as CSV text (also written to
        `path` when given)."""
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for name, row in self.stats().items():
            shape = "x".join(str(d) for d in row.pop("shape"))
            writer.writerow({"kind": "tensor", "name": name, "shape": shape, **row})
        for layer, row in self.layer_stats().items():
            writer.writerow({"kind": "layer", "name": layer, **row})
        writer.writerow({"kind": "total", "name": "", **self.total()})
        text = out.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # pictures ---------------------------------------------------------------------------

    def heatmap(self, name: str, *, max_size: int = 1024) -> Grid:
        """One tensor as a diverging heatmap centred at 0 with a colorbar; larger than
        `max_size` on a side → max-|w| pooled (the picture says so)."""
        ref = self._ref(name)
        small = None
        if ref.store is not None and ref.dtype == "bfloat16" and ref.layout == "torch":
            bits = as_matrix(ref.store.raw(name))
            r, c = bits.shape
            small, fy, fx = _pooled_bf16(bits, max_size)
        if small is None:
            matrix = as_matrix(self.values(name))
            if matrix.size == 0:
                raise ValueError(f"{name!r} is empty {matrix.shape}: nothing to draw")
            r, c = matrix.shape
            small, fy, fx = pooled(matrix, max_size, max_size)
        note = f"{r}x{c}" + (f", max-|w| pooled {fy}x{fx}" if fy > 1 or fx > 1 else "")
        return render_diverging(small, title=name, note=note)

    def filters(self, name: str | None = None) -> Grid:
        """The filters of conv kernel `name` (default: the first 4-D tensor)."""
        if name is None:
            name = next((n for n, t in self.tensors.items() if len(t.shape) == 4), None)
            if name is None:
                raise NotFoundError("no conv kernel (4-D tensor) in this model")
        return filter_grid(self.values(name), title=name)

    def spectra(self, names: list[str] | None = None) -> dict[str, Spectrum]:
        """Spectra of every 2-D+ weight (Linear, Conv, attention projections), or of `names`."""
        chosen = names or [
            n
            for n, t in self.tensors.items()
            if len(t.shape) >= 2 and min(t.shape[:2]) > 1 and t.getter is not None
        ]
        for n in chosen:
            if n not in self._spectra:
                self._spectra[n] = spectrum(self.values(n))
        return {n: self._spectra[n] for n in chosen}

    def esd(self, name: str) -> Grid:
        """The ESD histogram of one weight on log axes, the fit's xmin marked in red."""
        s = self.spectra([name])[name]
        title = f"{name}  alpha={s.alpha:.2f}  ||W||2={s.spectral_norm:.3g}"
        return render_esd(s.evals, xmin=s.fit.xmin, title=title)

    def show(self, name: str | None = None) -> Any:
        """In a notebook, display the heatmap of `name` (or the statistics table); returns
        the PIL image (or the CSV text) either way."""
        shown: Any = Image.fromarray(self.heatmap(name).pixels) if name else self.to_csv()
        try:
            from IPython import display as ipython_display
        except ImportError:
            return shown
        display: Any = ipython_display.display  # untyped in some IPython releases
        display(shown)
        return shown

    def spectra_table(self) -> dict[str, dict[str, float]]:
        """Per 2-D weight: spectral norm, stable rank, alpha, xmin, KS distance."""
        return {
            n: {
                "spectral_norm": s.spectral_norm,
                "stable_rank": s.stable_rank,
                "alpha": s.alpha,
                "xmin": s.fit.xmin,
                "D": s.fit.D,
            }
            for n, s in self.spectra().items()
        }

    def save(self, directory: str | Path) -> list[Path]:
        """Write stats.csv, spectra.csv, one heatmap PNG per readable tensor, one ESD PNG per
        2-D weight (``<name>.esd.png``) and the first conv kernel's filters (filters.png)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        written = [d / "stats.csv"]
        self.to_csv(written[0])
        rows = self.spectra_table()
        with open(d / "spectra.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["name", "spectral_norm", "stable_rank", "alpha", "xmin", "D"])
            for n, r in rows.items():
                w.writerow([n, *r.values()])
        written.append(d / "spectra.csv")
        for n, ref in self.tensors.items():
            if ref.getter is None or math.prod(ref.shape) == 0:
                continue
            p = d / f"{n.replace('/', '_')}.png"
            Image.fromarray(self.heatmap(n).pixels).save(p)
            written.append(p)
        for n, sp in self.spectra().items():
            if sp.evals.size and np.isfinite(sp.evals).any() and (sp.evals > 0).any():
                p = d / f"{n.replace('/', '_')}.esd.png"
                Image.fromarray(self.esd(n).pixels).save(p)
                written.append(p)
        kernel = next((n for n, t in self.tensors.items() if len(t.shape) == 4), None)
        if kernel is not None and self.tensors[kernel].getter is not None:
            Image.fromarray(self.filters(kernel).pixels).save(d / "filters.png")
            written.append(d / "filters.png")
        return written


def _pooled_bf16(bits: np.ndarray, max_size: int) -> tuple[np.ndarray | None, int, int]:
    """A stored bf16 matrix pooled on its bits (no float32 copy of the whole tensor);
    None when it is small, empty or holds a NaN (then the float path draws it)."""
    r, c = bits.shape
    fy, fx = max(1, math.ceil(r / max_size)), max(1, math.ceil(c / max_size))
    if bits.size == 0 or (fy == 1 and fx == 1):
        return None, fy, fx
    out = pool_bits(bits, fy, fx, BF16_INF)
    if out is None:
        return None, fy, fx
    return (out.astype(np.uint32) << 16).view(np.float32).astype(np.float64), fy, fx


def _from_file_stats(ref: TensorRef) -> dict[str, Any]:
    s = ref.file_stats or {}
    row: dict[str, Any] = dict.fromkeys(STAT_FIELDS)
    row["count"] = s.get("count", math.prod(ref.shape))
    for k in ("mean", "std", "min", "max"):
        row[k] = s.get(k)
    row["nan"], row["inf"] = s.get("n_nan"), s.get("n_inf")
    if row["min"] is not None and row["max"] is not None:
        row["absmax"] = max(abs(row["min"]), abs(row["max"]))
    return row
