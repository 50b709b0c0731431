"""`deepscope graph MODEL -o out.svg|png|json`: a static drawing or the Graph IR JSON."""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Draw a model's graph to SVG or PNG (collapsed to --depth), or write its Graph IR "
        "as JSON.\n\nMODEL is a model file or 'package.module:factory'. A factory is "
        "IMPORTED AND RUN: it is your own Python code, executed on purpose. PNG needs "
        "pip install 'deepscope[png]'."
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
    "--input-shape", "input_shapes", multiple=True, help="e.g. 1,3,224,224; repeat per input."
)
@click.option(
    "--depth", default=2, show_default=True, help="Module depth to collapse to (0: every op)."
)
@click.option(
    "--dtype", default="float32", show_default=True, help="Input dtype (int64 for token ids)."
)
@click.option("--trust-model", is_flag=True, help="Allow loading files that execute code.")
def graph(
    model: str,
    output: Path,
    input_shapes: tuple[str, ...],
    depth: int,
    dtype: str,
    trust_model: bool,
) -> None:
    from deepscope.sources.factory import target_graph

    suffix = output.suffix.lower()
    if suffix not in (".svg", ".png", ".json"):
        raise click.ClickException(f"-o must end in .svg, .png or .json, got '{output.name}'")
    try:
        g = target_graph(model, list(input_shapes), dtype, trust_model)
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
