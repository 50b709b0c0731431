"""``run.log_attention``: an `Attention` result (`deepscope.attention`) as the ``attention``
view kind, one item per layer plus the rollout; the dashboard's Attention tab draws it."""

from __future__ import annotations

from typing import Any

from deepscope.errors import DeepscopeError
from deepscope.views.registry import BlobWriter

__all__ = ["log_attention"]


def log_attention(
    run: BlobWriter, tag: str, result: Any, step: int | None = None, **options: Any
) -> int:
    """Write `result` through `deepscope.analysis.attention.show.write_attention` (options:
    ``layers``, ``image``, ``rollout``, ``flow``, ``prompt_length``, ``max_values``);
    return how many items were written."""
    from deepscope.analysis.attention.result import Attention
    from deepscope.analysis.attention.show import write_attention

    if not isinstance(result, Attention):
        raise DeepscopeError(
            f"log_attention takes the result of deepscope.attention(...), not "
            f"{type(result).__name__}"
        )
    return write_attention(run, tag, result, step, **options)
