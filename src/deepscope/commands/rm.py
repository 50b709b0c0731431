"""`deepscope rm LOGDIR_OR_URL RUN...`: delete runs from a store, through the store contract
(`deepscope.store.protocol.Store.delete_run`)."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["rm"]


def _where(target: str) -> str:
    from deepscope.store.postgres.url import is_postgres_url, mask

    return mask(target) if is_postgres_url(target) else target


def _status(store: Any, name: str) -> str:
    """The run's status for the prompt; raises `NotFoundError` for an unknown run."""
    from deepscope.errors import StoreError

    reader = store.run(name)
    try:
        return str(reader.info().status)
    except StoreError:
        return "unreadable"


@click.command("rm")
@click.argument("target", metavar="LOGDIR_OR_URL")
@click.argument("runs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Delete runs that are still being written (or whose state cannot be read) too.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rm(target: str, runs: tuple[str, ...], force: bool, yes: bool) -> None:
    """Delete RUNs (every scalar, histogram, image, blob and event) from a store.

    \b
    deepscope rm runs/ 20260101-120000-ab12cd34
    deepscope rm postgresql://me@db.example/deepscope sweep-3 sweep-4 --yes

    LOGDIR_OR_URL is a log directory (a run is its folder LOGDIR/RUN: removed without
    following any symbolic link; a run folder that is itself a link is refused) or a
    postgresql:// URL (the run's rows, blobs included, go in one transaction). The
    dashboard stops listing a deleted run on its next poll. This cannot be undone.

    Asks for confirmation unless --yes. Nothing is deleted when a RUN does not exist or
    one is still being written (a live heartbeat): stop the training first, or pass
    --force to delete such runs too. A training that is really alive goes on logging
    after a forced deletion, into a new run of the same name (it warns once), so stop
    it first.
    """
    import deepscope.store
    from deepscope.errors import DeepscopeError, NotFoundError

    where = _where(target)
    try:
        store = deepscope.store.open(target)
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from None
    names = list(dict.fromkeys(runs))  # each once, in the order given
    states: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        try:
            states[name] = _status(store, name)
        except NotFoundError:
            missing.append(name)
        except DeepscopeError as exc:
            raise click.ClickException(str(exc)) from None
    if missing:
        raise click.ClickException(
            f"no run named {', '.join(repr(n) for n in missing)} in {where} (nothing was "
            "deleted); list the runs with `deepscope serve` or check the spelling"
        )
    live = [n for n, s in states.items() if s in ("running", "unreadable")]
    if live and not force:
        detail = ", ".join(f"'{n}' ({states[n]})" for n in live)
        raise click.ClickException(
            f"{detail}: still being written, or its state cannot be read (nothing was "
            "deleted). Stop the training first, or pass --force to delete anyway."
        )
    if not yes:
        click.echo(f"Runs to delete from {where}:")
        for name in names:
            click.echo(f"  {name}  ({states[name]})")
        click.confirm(f"Delete {len(names)} run(s)? This cannot be undone", abort=True)
    failed = 0
    for name in names:
        try:
            store.delete_run(name, force=force)
        except DeepscopeError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"deleted run '{name}'")
    if failed:
        raise SystemExit(1)
