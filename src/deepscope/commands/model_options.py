"""The model options every command that opens a model shares: ``view``, ``graph``, ``summary``.

One set of flags, one validation, one loader (`deepscope.sources.factory.target_graph`):

- ``--input-shape`` (repeat it, one per model input; every size at least 1),
- ``--dtype`` (of the example inputs),
- ``--trust-model`` (allow model files whose format runs code); ``--trust`` is its old name
  under ``view``, kept as a hidden, deprecated alias on every command.

Example:
    >>> @click.command()
    ... @click.argument("model")
    ... @model_options
    ... def cmd(model, input_shapes, dtype, trust_model, trust_alias): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from deepscope.errors import DeepscopeError

__all__ = ["MODEL_HELP", "load_target", "model_options"]

F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = (
    "MODEL is a model file (.onnx, .keras, .h5, .safetensors, .pt, ...) or "
    "'package.module:factory'. A factory is IMPORTED AND RUN: it is your own Python code, "
    "executed on purpose. Files are parsed without running code unless --trust-model is given."
)


def _shapes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Validate every ``--input-shape`` up front, with the loader's own parser."""
    from deepscope.sources.factory import parse_shape

    for text in values:
        try:
            parse_shape(text)
        except DeepscopeError as exc:
            raise click.UsageError(str(exc), ctx) from exc
    return values


def model_options(command: F) -> F:
    """Add ``--input-shape``, ``--dtype``, ``--trust-model`` (and hidden ``--trust``)."""
    options = [
        click.option(
            "--input-shape",
            "input_shapes",
            multiple=True,
            callback=_shapes,
            metavar="SHAPE",
            help="Example input shape for a factory or a traced model, e.g. 1,3,224,224 "
            "(or 1x3x224x224); every size at least 1. Repeat it once per model input.",
        ),  # fmt: skip
        click.option(
            "--dtype",
            default="float32",
            show_default=True,
            help="Dtype of the example inputs (int64 for token ids).",
        ),  # fmt: skip
        click.option(
            "--trust-model",
            is_flag=True,
            help="Allow model files whose format runs code when loaded (TorchScript, .pt2, "
            "pickled .pt, Keras Lambda layers). Only for files you trust.",
        ),  # fmt: skip
        click.option(
            "--trust",
            "trust_alias",
            is_flag=True,
            hidden=True,
            help="Deprecated: use --trust-model.",
        ),  # fmt: skip
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_target(model: str, input_shapes: tuple[str, ...], dtype: str, trust_model: bool,
                trust_alias: bool = False) -> Any:  # fmt: skip
    """The Graph of `model` through the one loader; typed errors become click errors."""
    from deepscope.sources.factory import is_factory_spec, target_graph

    if trust_alias:
        click.echo("deepscope: --trust is deprecated; use --trust-model", err=True)
    if input_shapes and not is_factory_spec(model):
        click.echo("deepscope: --input-shape is not used for a model file (shapes come from it)",
                   err=True)  # fmt: skip
    try:
        return target_graph(model, list(input_shapes), dtype, trust_model or trust_alias)
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
