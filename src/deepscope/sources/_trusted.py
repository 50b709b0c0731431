"""The ONE audited place where deepscope runs code from a model file (M1-M3).

`trusted_load` is only reached with `trust=True`, and deepscope calls it only inside a
sandbox worker process (`deepscope.sources._sandbox`), never in the dashboard process.
A test scans `src/` and fails if `weights_only=False`, `torch.jit.load`, `torch.export.load`,
`pickle.load`, `marshal.loads`, `eval(` or `exec(` appear anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from deepscope.errors import UnsafeModelError

Kind = Literal["pickle", "torchscript", "export"]


def trusted_load(path: Path, kind: Kind, *, trust: bool) -> Any:
    """Load `path` with the loader for `kind`, executing whatever code the file holds.

    Raises `UnsafeModelError` unless `trust` is exactly True.
    """
    if trust is not True:
        raise UnsafeModelError(
            f"{Path(path).name} needs code execution to load; pass trust=True "
            "(--trust-model) only for files from a source you trust"
        )
    import torch

    if kind == "pickle":
        return torch.load(str(path), weights_only=False, map_location="cpu")
    if kind == "torchscript":
        return torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    if kind == "export":
        return torch.export.load(str(path))
    raise ValueError(f"unknown trusted loader kind {kind!r}")
