"""`deepscope weights MODEL -o DIR`: write a model file's weight pictures and statistics."""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Write the weights of a model file to DIR: stats.csv (per tensor, per layer, total), "
        "spectra.csv (spectral norm, stable rank, power-law alpha), one heatmap PNG per "
        "tensor, one ESD PNG per 2-D weight and filters.png. MODEL is a model file (.onnx, "
        ".keras, .h5, .safetensors, .pt, ...), read without running code from it."
    )
)
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write (created if missing).",
)
def weights(model: Path, output: Path) -> None:
    from deepscope.analysis.weights import weights as read_weights

    try:
        result = read_weights(model)
        written = result.save(output)
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
    total = result.total()
    click.echo(
        f"{len(result.tensors)} tensors, {total['count']:,} values "
        f"({total['nan']} NaN, {total['inf']} Inf); wrote {len(written)} files to {output}"
    )
    for note in result.notes:
        click.echo(f"note: {note}")
