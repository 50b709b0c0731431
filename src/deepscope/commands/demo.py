"""`deepscope demo`: every view on bundled data, offline."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import click


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"port {port} on {host} is taken ({exc.strerror}); pick another with --port"
            ) from exc


def _check_logdir(logdir: Path) -> None:
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        probe = logdir / f".deepscope-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise click.ClickException(
            f"cannot write to the log directory {logdir} ({exc.strerror}); pass a writable --logdir"
        ) from exc


@click.command()
@click.option(
    "--logdir",
    type=click.Path(path_type=Path),
    default=Path("demo-runs"),
    show_default=True,
    help="Where the demo writes its two runs.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the dashboard binds to."
)
@click.option("--port", type=int, default=6100, show_default=True, help="Dashboard port.")
@click.option("--epochs", type=int, default=8, show_default=True, help="Epochs of the healthy run.")
@click.option("--no-serve", is_flag=True, help="Only write the runs; do not start the dashboard.")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
def demo(logdir: Path, host: str, port: int, epochs: int, no_serve: bool, no_browser: bool) -> None:
    """Train a small CNN on scikit-learn's digits and show every view.

    Writes two runs into LOGDIR: `digits-cnn` (healthy: loss and accuracy curves, weight
    and gradient histograms, predictions, the model graph, attribution maps, feature maps
    and unit statistics, weights at the start and end, the penultimate layer for the
    Projector, and the attention of a tiny transformer that learns to reverse letters) and
    `digits-cnn-lr20` (a learning rate that diverges, so the diagnosis events show where
    NaN first appeared and that gradients exploded). Then serves the dashboard and
    prints its URL. Nothing is downloaded; no GPU is needed.
    """
    _check_logdir(logdir)
    if not no_serve:
        _check_port(host, port)
    from deepscope.demo import run_demo

    start = time.perf_counter()
    result = run_demo(logdir, progress=True, epochs=epochs)
    took = time.perf_counter() - start
    click.echo(
        f"wrote runs '{result.healthy_run}' (test accuracy {result.test_accuracy:.1%}) and "
        f"'{result.diverging_run}' to {logdir} in {took:.1f} s"
    )
    if no_serve:
        click.echo(f"view them with: deepscope serve {logdir}")
        return
    from deepscope.commands.serve import TOKEN_BYTES, is_loopback, run_server

    token = None if is_loopback(host) else secrets.token_urlsafe(TOKEN_BYTES)
    explorer = explore_demo(logdir, result.healthy_run, host=host, port=0, token=token)
    click.echo(f"deepscope: explore the trained CNN live at {explorer.url}")
    run_server(host=host, port=port, token=token, allowed_hosts=(), what="demo dashboard",
               open_browser=not no_browser and _has_display(), logdir=logdir.resolve())  # fmt: skip


def explore_demo(logdir: Path, run: str, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, inputs: int = 32) -> Any:  # fmt: skip
    """`deepscope.explore` on the demo's trained CNN (its weights from the run folder, read
    by the safe loader) and the first `inputs` test digits, labelled."""
    from deepscope.demo import DigitsCNN, load_digits
    from deepscope.demo.train import MODEL_FILE
    from deepscope.workbench import explore
    from deepscope.workbench.inputs import load_weights

    model = DigitsCNN()
    load_weights(model, Path(logdir) / run / MODEL_FILE)
    data = load_digits()
    return explore(model, data.x_test[:inputs], labels=data.y_test[:inputs],
                   classes=[str(d) for d in range(10)], host=host, port=port, token=token)  # fmt: skip


def _has_display() -> bool:
    """Only open a browser where one can show up (not a text browser in this terminal)."""
    import sys

    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
