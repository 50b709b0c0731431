"""``deepscope view MODEL [--inputs PATH]``: a model in the graph panel, live with inputs.

Without ``--inputs`` this is the model viewer of ``deepscope serve``'s module
(`deepscope.commands.serve.view`): a model file (parsed, never run) or a factory, graph and
weights. With ``--inputs`` it is the workbench of `deepscope.explore`: every node's feature
maps, gradients, Grad-CAM, saliency and attention computed on demand. That needs a model
that runs, and model files never execute code here, so the runnable model comes from
``package.module:factory`` (your own code, imported and run on purpose), optionally with
``--weights FILE`` (a ``.safetensors`` file or a state dict read by the safe loader) loaded
into it. A model *file* with ``--inputs`` is refused with that advice. Security is
``serve``'s: loopback by default, a generated token for any other ``--host``, the Host check.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click

from deepscope.commands import serve as _serve
from deepscope.commands.model_options import MODEL_HELP, model_options
from deepscope.errors import DeepscopeError

__all__ = ["view"]


@click.command(help=(
    f"Open MODEL in the graph panel of a local dashboard.\n\n{MODEL_HELP}\n\n"
    "With --inputs (a folder of images, a .npy/.npz file or module:function returning a "
    "batch) the model runs live: click a node for its activations, gradients, Grad-CAM, "
    "saliency and attention. That needs MODEL as module:factory (optionally --weights FILE)."
))  # fmt: skip
@click.argument("model")
@click.option("--port", default=_serve.VIEW_PORT, show_default=True,
              type=click.IntRange(0, 65535))  # fmt: skip
@click.option("--inputs", "inputs", default=None, metavar="PATH",
              help="Inputs for the live workbench: image folder, .npy/.npz or module:function.")  # fmt: skip
@click.option("--weights", "weights_file", default=None, type=click.Path(path_type=Path),
              help="A .safetensors file or state dict loaded into the factory's model.")  # fmt: skip
@click.option("--classes", default=None, metavar="A,B,...",
              help="Class names, comma-separated (image subfolders name them otherwise).")  # fmt: skip
@click.option("--channels", default="3", show_default=True, type=click.Choice(["1", "3"]),
              help="Channels to read images with (1: grayscale).")  # fmt: skip
@model_options
@_serve._host
@_serve._token
@_serve._allowed
@_serve._open
def view(model: str, port: int, inputs: str | None, weights_file: Path | None,
         classes: str | None, channels: str, input_shapes: tuple[str, ...], dtype: str,
         trust_model: bool, trust_alias: bool, host: str, token: str | None,
         allowed_hosts: tuple[str, ...], open_browser: bool) -> None:  # fmt: skip
    """Open MODEL in the graph panel; live views with --inputs."""
    if inputs is None:
        if weights_file is not None or classes is not None:
            raise click.UsageError("--weights and --classes go with --inputs")
        ctx = click.get_current_context()
        ctx.invoke(_serve.view, model=model, port=port, input_shapes=input_shapes, dtype=dtype,
                   trust_model=trust_model, trust_alias=trust_alias, host=host, token=token,
                   allowed_hosts=allowed_hosts, open_browser=open_browser)  # fmt: skip
        return
    try:
        explorer = _start(model, inputs, weights_file, classes, int(channels), host, port,
                           token, allowed_hosts)  # fmt: skip
    except DeepscopeError as exc:
        raise click.ClickException(str(exc)) from exc
    url = explorer.url
    click.echo(f"deepscope: exploring {model} at {url}  (Ctrl+C to stop)")
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        explorer.close()


def _start(model: str, inputs: str, weights_file: Path | None, classes: str | None,
           channels: int, host: str, port: int, token: str | None,
           allowed_hosts: tuple[str, ...]) -> Any:  # fmt: skip
    import secrets

    from deepscope.sources.factory import is_factory_spec, resolve_factory

    if not is_factory_spec(model):
        raise DeepscopeError(
            f"--inputs runs the model, and model files are never run here: pass the model as "
            f"'package.module:factory' (your code builds it), with --weights {Path(model).name} "
            "when the file holds its weights (.safetensors or a state dict)"
        )
    from deepscope.workbench import _serve_bench
    from deepscope.workbench.inputs import load_inputs, load_weights

    net = resolve_factory(model)
    if weights_file is not None:
        for note in load_weights(net, weights_file):
            click.echo(f"deepscope: {note}", err=True)
    batch = load_inputs(inputs, channels=channels)
    names = [c.strip() for c in classes.split(",")] if classes else batch.classes
    if token is None and not _serve.is_loopback(host):
        token = secrets.token_urlsafe(_serve.TOKEN_BYTES)
        click.echo(f"deepscope: --host {host} is reachable from the network; a token was "
                   "generated and is required (pass --token to choose one).", err=True)  # fmt: skip
    extra = frozenset(h.lower() for h in allowed_hosts) | _serve._wildcard_names(host)
    return _serve_bench(net, batch.inputs, labels=batch.labels, classes=names, host=host,
                        port=port, token=token, allowed_hosts=extra)  # fmt: skip
