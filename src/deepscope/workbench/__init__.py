"""The live-model workbench: `deepscope.explore(model, inputs)`.

The dashboard's graph of `model`; clicking a node opens its Weights, Activations, Gradients,
Attribution and Attention views for a chosen input and class, computed on demand by the
public analysis API (`deepscope.activations`, `deepscope.attribute`, `deepscope.attention`,
`deepscope.weights`) in the Python process that holds the model. The server
(`deepscope.server`, no torch) reaches the model only through
`deepscope.server.routes.workbench.WorkbenchSource`, which `source.Workbench` implements.

Example:
    >>> import torch, deepscope
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    >>> ex = deepscope.explore(net, torch.rand(4, 1, 8, 8))  # doctest: +SKIP
    >>> ex.url                                                # doctest: +SKIP
    'http://127.0.0.1:41234/'
    >>> ex.close()                                            # doctest: +SKIP
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from typing import Any

from deepscope.errors import DeepscopeError

__all__ = ["Explorer", "explore"]


@dataclass
class Explorer:
    """A running workbench: open `url`; `close()` stops the server and its workers. A
    notebook shows it inline (an iframe of `url`) with a link."""

    url: str
    workbench: Any
    _stop: Any = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Stop the server thread and the view workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop()
        self.workbench.close()

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (
            f'<div><a href="{url}" target="_blank" rel="noopener">deepscope workbench: {url}</a>'
            f'<iframe src="{url}" style="width:100%;height:720px;border:1px solid #ddd" '
            'title="deepscope workbench"></iframe></div>'
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The workbench as a notebook widget (`deepscope.notebook.explore_widget`: its API
        over the widget's comm channel; a link beside it as the static fallback) when
        anywidget is installed, else the link and an iframe of `url`."""
        if not self._closed:
            try:
                from deepscope.notebook.explore_widget import ExploreWidget
            except ImportError:
                pass
            else:
                widget = self.__dict__.get("_widget")
                if widget is None:
                    widget = self.__dict__["_widget"] = ExploreWidget(self.url)
                return widget._repr_mimebundle_(**kwargs)
        return {"text/html": self._repr_html_(), "text/plain": f"deepscope workbench at {self.url}"}


def explore(
    model: Any,
    inputs: Any,
    labels: Any = None,
    classes: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
) -> Explorer:
    """Serve the workbench of the live `model` on `inputs` (a batch: tensor or array, first
    axis the items) and return at once; the server runs in a thread until `close()`.

    `labels` (one class index per input) and `classes` (class names) label the input strip
    and the predictions. The model is put in eval mode. `host` defaults to loopback; any
    other address needs a `token` (a `DeepscopeError` otherwise), as ``deepscope serve``
    does; the Host header is checked as there.
    """
    from deepscope.commands.serve import is_loopback

    if token is None and not is_loopback(host):
        raise DeepscopeError(
            f"host {host!r} is reachable from the network: pass token='<secret>' "
            "(explore serves your live model; loopback needs none)"
        )
    return _serve_bench(model, inputs, labels=labels, classes=classes, host=host, port=port,
                        token=token)  # fmt: skip


def _serve_bench(model: Any, inputs: Any, *, labels: Any, classes: list[str] | None,
                 host: str, port: int, token: str | None,
                 allowed_hosts: frozenset[str] = frozenset()) -> Explorer:  # fmt: skip
    """Build the `Workbench` of `model` on `inputs` and serve it (no host policy here:
    callers check it)."""
    import numpy as np
    import torch

    from deepscope.sources import graph as build_graph
    from deepscope.workbench.source import Workbench, as_batch

    if not isinstance(model, torch.nn.Module):
        raise DeepscopeError(f"explore needs a torch.nn.Module, not {type(model).__name__}")
    batch = as_batch(inputs)
    if len(batch) == 0:
        raise DeepscopeError("inputs hold no items: pass a batch of at least one")
    label_list = None
    if labels is not None:
        label_list = [int(v) for v in np.asarray(labels).reshape(-1).tolist()]
    model.eval()
    graph = build_graph(model, batch[:1])
    bench = Workbench(model, batch, graph, labels=label_list, classes=classes)
    try:
        url, stop = serve(bench, host=host, port=port, token=token, allowed_hosts=allowed_hosts)
    except BaseException:
        bench.close()
        raise
    return Explorer(url=url, workbench=bench, _stop=stop)


def serve(bench: Any, *, host: str, port: int, token: str | None,
          allowed_hosts: frozenset[str] = frozenset()) -> tuple[str, Any]:  # fmt: skip
    """Start the dashboard for `bench` in a daemon thread; its URL (with the token) and a
    `stop()`."""
    from deepscope.analysis.weights import weights
    from deepscope.server.app import create_app
    from deepscope.server.routes.workbench import attach
    from deepscope.server.runner import bind, make_server, url_for
    from deepscope.server.settings import Settings
    from deepscope.views.kinds.weights import ModelWeightsSource

    source = ModelWeightsSource(weights(bench.model), label=bench.name)
    settings = Settings(token=token, bound_host=host, allowed_hosts=allowed_hosts,
                        model_graph=bench.graph, model_weights=source)  # fmt: skip
    app = create_app(settings)
    attach(app, bench)
    sock = bind(host, port)
    server = make_server(settings, app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="deepscope-explore", daemon=True)  # fmt: skip
    thread.start()
    import time

    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise DeepscopeError("the workbench server did not start; see the log above")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    base = url_for(host, sock.getsockname()[1])
    return (f"{base}/?token={token}" if token else f"{base}/"), stop
