"""``deepscope serve LOGDIR`` and ``deepscope view MODEL``: run the dashboard.

Both bind 127.0.0.1 by default. A non-loopback ``--host`` without ``--token`` gets a fresh
random token (>= 128 bits), printed once in the URL and required on every request. A
taken port is a one-line error and exit code 2. ``view`` loads the model through the same
loader and flags as ``graph`` and ``summary`` (`deepscope.commands.model_options`; torch
only when the model needs it) before the server starts; the server never imports torch.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

import click

from deepscope.commands.model_options import MODEL_HELP, load_target, model_options
from deepscope.errors import DeepscopeError

DEFAULT_PORT = 6100
VIEW_PORT = 6101
TOKEN_BYTES = 24  # token_urlsafe(24): 192 bits


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _wildcard_names(host: str) -> set[str]:
    """Names a browser may use for a server bound to every interface."""
    if host not in ("0.0.0.0", "::", ""):
        return set()
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return {n.lower() for n in names if n}


def run_server(
    *,
    host: str,
    port: int,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    open_browser: bool,
    what: str,
    **settings: Any,
) -> None:
    """Bind, print the URL, serve until Ctrl+C. Exit code 2 when the port is taken."""
    from deepscope.server.runner import PortInUseError, bind, make_server, url_for
    from deepscope.server.settings import Settings

    generated = False
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(TOKEN_BYTES)
        generated = True
    extra = frozenset(h.lower() for h in allowed_hosts) | _wildcard_names(host)
    config = Settings(token=token, bound_host=host, allowed_hosts=extra, **settings)
    try:
        sock = bind(host, port)
    except PortInUseError as exc:
        click.echo(f"deepscope: {exc}", err=True)
        sys.exit(2)
    except DeepscopeError as exc:
        click.echo(f"deepscope: {exc}", err=True)
        sys.exit(2)
    url = url_for(host, sock.getsockname()[1])
    visit = f"{url}/?token={token}" if token else f"{url}/"
    if generated:
        click.echo(
            f"deepscope: --host {host} is reachable from the network; a token was generated "
            "and is required (pass --token to choose one).",
            err=True,
        )
    click.echo(f"deepscope: {what} at {visit}  (Ctrl+C to stop)", err=False)
    sys.stdout.flush()
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(visit,)).start()
    make_server(config).run(sockets=[sock])


_host = click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to listen on. Anything but loopback requires a token.")  # fmt: skip
_token = click.option("--token", default=None, envvar="DEEPSCOPE_TOKEN",
                      help="Access token (generated when --host is not loopback).")  # fmt: skip
_allowed = click.option("--allowed-host", "allowed_hosts", multiple=True,
                        help="Extra Host header name to accept (repeatable).")  # fmt: skip
_open = click.option("--open", "open_browser", is_flag=True, help="Open a browser tab.")


def _logdir_or_url(ctx: click.Context, param: click.Parameter, value: str) -> Path | str:
    """A log directory that exists, or a ``postgresql://`` URL (kept as a string)."""
    from deepscope.store.postgres.url import is_postgres_url

    if is_postgres_url(value):
        return value
    checked: Path = click.Path(exists=True, file_okay=False, path_type=Path).convert(
        value, param, ctx
    )
    return checked


@click.command()
@click.argument("logdir", metavar="LOGDIR|URL", callback=_logdir_or_url)
@_host
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@_token
@_allowed
@_open
def serve(
    logdir: Path | str,
    host: str,
    port: int,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    open_browser: bool,
) -> None:
    """Serve the dashboard for the runs in LOGDIR (default http://127.0.0.1:6100), or in
    a PostgreSQL store: ``deepscope serve postgresql://user:password@host/db``."""
    if isinstance(logdir, str):  # a database URL: blobs are cached in a local folder
        from deepscope.store.postgres.reader import default_cache_dir
        from deepscope.store.postgres.url import mask

        cache = default_cache_dir(logdir)
        cache.mkdir(parents=True, exist_ok=True)
        run_server(host=host, port=port, token=token, allowed_hosts=allowed_hosts,
                   open_browser=open_browser, what=f"serving {mask(logdir)}",
                   logdir=cache.resolve(), store_url=logdir)  # fmt: skip
        return
    run_server(host=host, port=port, token=token, allowed_hosts=allowed_hosts,
               open_browser=open_browser, what=f"serving {logdir}",
               logdir=logdir.resolve())  # fmt: skip


@click.command(help=f"Open MODEL in the graph panel of a local dashboard.\n\n{MODEL_HELP}")
@click.argument("model")
@click.option("--port", default=VIEW_PORT, show_default=True, type=click.IntRange(0, 65535))
@model_options
@_host
@_token
@_allowed
@_open
def view(
    model: str,
    port: int,
    input_shapes: tuple[str, ...],
    dtype: str,
    trust_model: bool,
    trust_alias: bool,
    host: str,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    open_browser: bool,
) -> None:
    """Open MODEL (a model file or package.module:factory) in the graph panel."""
    graph = load_target(model, input_shapes, dtype, trust_model, trust_alias)
    run_server(host=host, port=port, token=token, allowed_hosts=allowed_hosts,
               open_browser=open_browser, what=f"showing {model}",
               model_graph=graph, model_weights=weights_source(model))  # fmt: skip


def weights_source(model: str) -> Any:
    """The tensor values of model file `model` for the graph inspector and the Weights tab
    (`ModelWeightsSource`: read lazily through `deepscope.weights`, the safe loaders), or
    None (with a note) for a factory or a file whose values cannot be read safely."""
    from deepscope.sources.factory import is_factory_spec

    if is_factory_spec(model):
        click.echo("deepscope: weights are shown for model files only (not factories)", err=True)
        return None
    from deepscope.analysis.weights import weights
    from deepscope.views.kinds.weights import ModelWeightsSource

    try:
        return ModelWeightsSource(weights(model), label=Path(model).name)
    except DeepscopeError as exc:
        click.echo(f"deepscope: no weight values for {model}: {exc}", err=True)
        return None
