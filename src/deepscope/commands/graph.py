"""`deepscope graph MODEL -o out.svg|png|json`: a static drawing or the Graph IR JSON."""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.commands.model_options import MODEL_HELP, load_target, model_options
from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Draw a model's graph to SVG or PNG (collapsed to --depth), or write its Graph IR "
        f"as JSON.\n\n{MODEL_HELP} PNG needs pip install 'deepscope[png]'."
    )
)
@click.argument("model")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="out.svg, out.png or out.json",
)
@click.option(
    "--depth", default=2, show_default=True, help="Module depth to collapse to (0: every op)."
)
@model_options
def graph(
    model: str,
    output: Path,
    depth: int,
    input_shapes: tuple[str, ...],
    dtype: str,
    trust_model: bool,
    trust_alias: bool,
) -> None:
    suffix = output.suffix.lower()
    if suffix not in (".svg", ".png", ".json"):
        raise click.ClickException(f"-o must end in .svg, .png or .json, got '{output.name}'")
    g = load_target(model, input_shapes, dtype, trust_model, trust_alias)
    try:
        if suffix == ".json":
            from deepscope.graph.serialize import to_json

            output.write_text(to_json(g), encoding="utf-8")
        elif suffix == ".svg":
            from deepscope.render.svg_graph import render_svg

            output.write_text(render_svg(g, depth or None), encoding="utf-8")
        else:
            from deepscope.render.svg_graph import render_png

            output.write_bytes(render_png(g, depth or None))
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {output} ({len(g.nodes)} ops)")
