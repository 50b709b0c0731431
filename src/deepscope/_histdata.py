"""`HistogramData`: the one histogram record, shared by every layer that makes or stores one.

`deepscope.capture.reducers` decodes device summaries into it, `deepscope.tracking.histogram`
computes it from values, `deepscope.store.tb_import` builds it from TensorBoard events and
the store's writer reads its fields. It sits below all of them so none imports another
layer for it; at run time it needs the standard library only (numpy only types its fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["HistogramData"]


@dataclass(frozen=True, eq=False)
class HistogramData:
    """One histogram: bins over the finite values plus counts of the non-finite ones.

    `edges` has `len(counts) + 1` float64 entries; `count` is the number of finite values
    binned (`counts.sum() == count`); `min`/`max` are None when no value is finite, and
    then every count is 0. `sum` and `sum_sq` are over the finite values (float64; they
    may overflow to inf for values near the float64 limit).
    """

    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    count: int
    n_nan: int
    n_posinf: int
    n_neginf: int
    min: float | None
    max: float | None
    sum: float
    sum_sq: float

    @property
    def total(self) -> int:
        """Every value seen: finite plus NaN plus both infinities."""
        return self.count + self.n_nan + self.n_posinf + self.n_neginf
