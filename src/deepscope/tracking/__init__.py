"""Training-side API: `init()` returns a `Run` that logs into the run store.

`Run.watch` and the framework callbacks load torch only when used.
"""

from deepscope.tracking.run import Run, init

__all__ = ["Run", "init"]
