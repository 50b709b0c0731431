"""`deepscope import-tb TB_LOGDIR LOGDIR`: bring TensorBoard event files into a logdir."""

from __future__ import annotations

from pathlib import Path

import click

from deepscope.errors import OptionalDependencyError


@click.command("import-tb")
@click.argument("tb_logdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("logdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def import_tb(tb_logdir: Path, logdir: Path, quiet: bool) -> None:
    """Import the TensorBoard runs under TB_LOGDIR into LOGDIR.

    Every directory holding events.out.tfevents.* files becomes one run (named after its
    path); scalars, histograms, images and text keep their steps and wall times. Then:
    deepscope serve LOGDIR.
    """
    from tqdm import tqdm

    from deepscope.errors import require

    require("tensorboard", "tensorboard")  # before tb_import, which imports numpy
    from deepscope.store.tb_import import find_runs
    from deepscope.store.tb_import import import_tb as run_import

    try:
        runs = find_runs(tb_logdir)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    total = sum(f.stat().st_size for files in runs.values() for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="import-tb", disable=quiet) as bar:
        try:
            summary = run_import(tb_logdir, logdir, progress=bar.update)
        except (FileNotFoundError, OptionalDependencyError) as exc:
            raise click.ClickException(str(exc)) from exc
    if quiet:
        return
    for name, run in summary.runs.items():
        skipped = sum(run.skipped.values())
        click.echo(
            f"{name}: {run.scalars} scalars, {run.histograms} histograms, {run.images} images, "
            f"{run.texts} texts" + (f", {skipped} values of other kinds skipped" if skipped else "")
        )
    click.echo(f"Imported {len(summary.runs)} run(s) into {logdir}. View: deepscope serve {logdir}")
