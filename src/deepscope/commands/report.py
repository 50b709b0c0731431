"""``deepscope report LOGDIR|MODEL -o report.html``: one self-contained, offline HTML file.

The file holds the report bundle (the dashboard's own panels, `frontend/src/entries/
report.tsx`) and a snapshot of the dashboard API recorded through the server
(`deepscope.notebook.snapshot`): scripts, styles and data inline, no network, no server;
it opens from ``file://``. A directory is a log directory (``--runs`` and ``--tags`` pick
runs and tags by glob); anything else is a model (file or ``module:factory``) shown in the
graph explorer, as ``deepscope view`` shows it. Its size and the time to write it are
printed; ``--max-mb`` bounds the size (blobs past the budget are left out and named).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from deepscope.commands.model_options import MODEL_HELP, load_target, model_options
from deepscope.errors import DeepscopeError

MB = 1024 * 1024


@click.command(
    help=(
        "Write one self-contained HTML report (no network, no server) of a log directory's "
        f"runs or of a model's graph.\n\nTARGET is a log directory, or a model. {MODEL_HELP}"
    )
)
@click.argument("target")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The HTML file to write.")  # fmt: skip
@click.option("--runs", "runs", multiple=True, metavar="GLOB",
              help="Runs to include (glob; repeat it). Default: every run.")  # fmt: skip
@click.option("--tags", "tags", multiple=True, metavar="GLOB",
              help="Tags to include (glob; repeat it). Default: every tag. Graphs stay.")  # fmt: skip
@click.option("--max-mb", default=5.0, show_default=True,
              help="Size budget: blobs (images, maps) past it are left out.")  # fmt: skip
@click.option("--title", default=None, help="The page title (default: the target's name).")
@model_options
def report(
    target: str,
    output: Path,
    runs: tuple[str, ...],
    tags: tuple[str, ...],
    max_mb: float,
    title: str | None,
    input_shapes: tuple[str, ...],
    dtype: str,
    trust_model: bool,
    trust_alias: bool,
) -> None:
    from deepscope.notebook.snapshot import Limits, snapshot_logdir, snapshot_model
    from deepscope.views.embed import report_html, report_script

    if output.suffix.lower() not in (".html", ".htm"):
        raise click.ClickException(f"-o must end in .html, got '{output.name}'")
    start = time.perf_counter()
    try:
        script = report_script()
        # the page, its bundle and base64 (4/3) must fit: blobs get what is left
        budget = int(max_mb * MB - len(script) - 256 * 1024)
        limits = Limits(max_blob_bytes=max(0, budget * 3 // 4 - 1024 * 1024))
        if Path(target).is_dir():
            rec = snapshot_logdir(target, runs=runs or None, tags=tags or None, limits=limits)
        else:
            if runs or tags:
                raise click.UsageError("--runs and --tags pick from a log directory, not a model")
            graph = load_target(target, input_shapes, dtype, trust_model, trust_alias)
            rec = snapshot_model(graph, limits=limits)
        page = report_html(rec.snapshot, title=title or f"deepscope report: {Path(target).name}",
                           script=script)  # fmt: skip
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
    output.parent.mkdir(parents=True, exist_ok=True)
    data = page.encode("utf-8")
    output.write_bytes(data)
    seconds = time.perf_counter() - start
    for note in rec.notes:
        click.echo(f"note: {note}", err=True)
    what = f"{len(rec.snapshot['runs'])} runs" if Path(target).is_dir() else "the model's graph"
    click.echo(f"wrote {output} ({len(data) / MB:.2f} MB, {what}) in {seconds:.1f} s")
    if len(data) > max_mb * MB:
        click.echo(f"warning: {output} is over --max-mb {max_mb} (the data besides blobs "
                   "is not cut: pick fewer runs or tags)", err=True)  # fmt: skip
