"""The reference the weight-statistics tests compare with: numpy in float64 on the same
values (NaN / Inf counted, the rest over the finite values only; None where there is no
finite value, as in `deepscope.weights`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def numpy_stats(x: np.ndarray) -> dict[str, Any]:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    f = a[np.isfinite(a)]
    has = f.size > 0
    return {
        "count": a.size,
        "mean": f.mean() if has else None,
        "std": f.std() if has else None,
        "min": f.min() if has else None,
        "max": f.max() if has else None,
        "absmax": np.abs(f).max() if has else None,
        "zeros": float((a == 0).mean()) if a.size else None,
        "l2": np.linalg.norm(f) if has else None,
        "nan": int(np.isnan(a).sum()),
        "inf": int(np.isinf(a).sum()),
    }
