"""`deepscope summary MODEL`: print the layer table of a model file or a Python factory."""

from __future__ import annotations

import click

from deepscope.commands.model_options import MODEL_HELP, load_target, model_options
from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Print a model's layer table: module tree, output shapes, params, MACs, totals."
        f"\n\n{MODEL_HELP}"
    )
)
@click.argument("model")
@click.option("--depth", default=3, show_default=True, help="Module tree depth shown.")
@model_options
def summary(
    model: str,
    depth: int,
    input_shapes: tuple[str, ...],
    dtype: str,
    trust_model: bool,
    trust_alias: bool,
) -> None:
    from deepscope.sources.summary import summary_from_graph

    g = load_target(model, input_shapes, dtype, trust_model, trust_alias)
    try:
        click.echo(str(summary_from_graph(g, depth)))
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
