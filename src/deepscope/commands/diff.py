"""`deepscope diff A B`: which tensors differ between two model files, and by how much."""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.errors import DeepscopeError


@click.command(
    help=(
        "Compare the weights of two model files tensor by tensor: added, removed, reshaped "
        "and changed tensors, and for each matching one ||d||, ||d||/||a||, cosine and "
        "max |d| (d = B - A). Files are read without running code from them."
    )
)
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the full table as CSV to this file.",
)
def diff(a: Path, b: Path, output: Path | None) -> None:
    from deepscope.analysis.weights import diff as diff_weights

    try:
        result = diff_weights(a, b)
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is not None:
        result.to_csv(output)
    for label, names in (
        ("added", result.added),
        ("removed", result.removed),
        ("reshaped", result.reshaped),
    ):
        for n in names:
            click.echo(f"{label:9} {n}")
    for n in result.changed:
        row = result.rows.get(n)
        if row is not None:
            click.echo(
                f"changed   {n}  |d|={row['norm_delta']:.4g} rel={row['rel_delta']:.4g} "
                f"cos={row['cosine']:.6f} max|d|={row['max_abs']:.4g}"
                if row["norm_delta"] is not None
                else f"changed   {n}"
            )
    click.echo(
        f"{len(result.changed)} of {len(set(result.a.tensors) | set(result.b.tensors))} "
        "tensors differ"
    )
