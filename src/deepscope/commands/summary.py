"""`deepscope summary MODEL`: print the layer table of a model file or a Python factory."""

from __future__ import annotations

import click

from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Print a model's layer table: module tree, output shapes, params, MACs, totals.\n\n"
        "MODEL is a model file (.onnx, .keras, .safetensors, .pt, ...) or "
        "'package.module:factory'. A factory is IMPORTED AND RUN: it is your own Python "
        "code, executed on purpose. Files are parsed without running code unless "
        "--trust-model is given."
    )
)
@click.argument("model")
@click.option(
    "--input-shape", "input_shapes", multiple=True, help="e.g. 1,3,224,224; repeat per input."
)
@click.option("--depth", default=3, show_default=True, help="Module tree depth shown.")
@click.option(
    "--dtype", default="float32", show_default=True, help="Input dtype (int64 for token ids)."
)
@click.option("--trust-model", is_flag=True, help="Allow loading files that execute code.")
def summary(
    model: str, input_shapes: tuple[str, ...], depth: int, dtype: str, trust_model: bool
) -> None:
    from deepscope.sources.factory import target_graph
    from deepscope.sources.summary import summary_from_graph

    try:
        g = target_graph(model, list(input_shapes), dtype, trust_model)
        click.echo(str(summary_from_graph(g, depth)))
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
