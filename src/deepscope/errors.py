"""Typed errors. Each says what went wrong and what to do; the server maps them to HTTP codes."""

from __future__ import annotations


class DeepscopeError(Exception):
    """Base of every error deepscope raises on purpose."""

    http_status: int = 400


class NotFoundError(DeepscopeError):
    """A run, tag, step, blob or file that does not exist."""

    http_status = 404


class StoreError(DeepscopeError):
    """The run store cannot be opened or written (disk full, read-only, network filesystem)."""

    http_status = 500


class UnreadableRunError(StoreError):
    """A run's ``run.db`` cannot be read: corrupt, truncated, not a database, wrong types, or
    a schema deepscope did not write (views, triggers). `run` names it, `reason` says why."""

    http_status = 422

    def __init__(self, run: str, reason: str) -> None:
        super().__init__(f"run '{run}' cannot be read: {reason}")
        self.run = run
        self.reason = reason


class ReadDeadlineError(UnreadableRunError):
    """A read of one run ran past its deadline (and that run is refused for a while)."""

    http_status = 503


class RunInUseError(DeepscopeError):
    """A run cannot be deleted: it is still being written (a live session), or whether it
    is cannot be told. The message says how to go on (stop the writer, or force)."""

    http_status = 409


class ModelFormatError(DeepscopeError):
    """A model file is malformed, truncated, too large or of a format deepscope cannot read."""

    http_status = 422


class UnsafeModelError(ModelFormatError):
    """A model file would need code execution to load (pickle globals, TorchScript, Lambda)."""

    http_status = 422


class OptionalDependencyError(DeepscopeError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    http_status = 501


def require(module: str, extra: str) -> None:
    """Raise `OptionalDependencyError` with an install hint unless `module` imports."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise OptionalDependencyError(
            f"this needs the '{module}' package: pip install 'deepscope[{extra}]'"
        )
