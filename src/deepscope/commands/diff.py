"""`deepscope diff A B`: which tensors differ between two model files, and by how much.

The table is printed (and written as CSV with ``-o``); ``--serve`` then opens the diff view
in a local dashboard (the Weights tab: changed tensors, Δ heatmaps; the graph of B coloured
by relative Δ), on 127.0.0.1 unless ``--host`` says otherwise (then with a token).
"""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.commands.serve import VIEW_PORT, _host, _open, _token, run_server
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
@click.option("--serve", "serve", is_flag=True,
              help="Then open the diff view in a local dashboard (Ctrl+C to stop).")  # fmt: skip
@click.option("--port", default=VIEW_PORT, show_default=True, type=click.IntRange(0, 65535))
@_host
@_token
@_open
def diff(a: Path, b: Path, output: Path | None, serve: bool, port: int, host: str,
         token: str | None, open_browser: bool) -> None:  # fmt: skip
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
    if serve:
        _serve(result, a, b, port=port, host=host, token=token, open_browser=open_browser)


def _serve(result: object, a: Path, b: Path, *, port: int, host: str, token: str | None,
           open_browser: bool) -> None:  # fmt: skip
    """The dashboard over the diff: B's graph, the `DiffWeightsSource` of `result`."""
    from deepscope.commands.model_options import load_target
    from deepscope.views.kinds.weights_diff import DiffWeightsSource

    graph = load_target(str(b), (), "float32", False)
    source = DiffWeightsSource(result, labels=(a.name, b.name))
    run_server(host=host, port=port, token=token, allowed_hosts=(), open_browser=open_browser,
               what=f"diff {a.name} -> {b.name}", model_graph=graph,
               model_weights=source)  # fmt: skip
