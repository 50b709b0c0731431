"""`show`: any deepscope result, or a run's dashboard, inline in a notebook.

- A result with a view kind (anything whose ``log(run, tag)`` writes view kinds:
  `AttributionResult`, and every kind's result that follows that contract; `Activations`
  and `UnitStats` through their kinds' loggers) is logged into a `ViewBuffer` and drawn by
  its panel, the dashboard's own component, as an anywidget (`ViewWidget`). A graph (a
  `Graph`, a `Summary`, a loaded `Model`) is drawn by the graph explorer.
- A log directory, or a `Run` (``run.show()``), is drawn as the whole dashboard: a
  snapshot of its runs recorded through the server (`deepscope.notebook.snapshot`) in the
  report page, inside a sandboxed iframe (`DashboardWidget`). We chose the inlined report
  over an iframe to a live server: it needs no port the browser can reach (remote kernels,
  VS Code, JupyterHub), survives in the saved notebook and in nbconvert's HTML, and the
  server's CSP (``frame-ancestors 'none'``) stays as it is. It is a snapshot: call
  ``run.show()`` again for newer data, or ``deepscope serve`` for a live dashboard.

Without anywidget (``pip install 'deepscope[notebook]'``) or outside IPython, `show`
returns a `Static` object whose ``_repr_png_``/``_repr_html_`` IPython displays.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepscope.errors import DeepscopeError
from deepscope.views import embed

__all__ = [
    "Static",
    "fallback_html",
    "graph_snapshot",
    "mimebundle",
    "result_snapshot",
    "save_html",
    "show",
    "show_logdir",
    "show_run",
]

_COUNTER = itertools.count(1)


@dataclass
class Static:
    """What `show` gives where widgets are not available: a picture and/or HTML."""

    png: bytes | None = None
    html: str = ""

    def _repr_png_(self) -> bytes | None:
        return self.png

    def _repr_html_(self) -> str:
        return self.html


def fallback_html(png: bytes | None, caption: str) -> str:
    """A static stand-in for a widget: the picture (inlined) and a caption, escaped."""
    import base64
    import html

    img = ""
    if png:
        data = base64.b64encode(png).decode("ascii")
        img = f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><br>'
    return f"<div>{img}<small>{html.escape(caption)}</small></div>"


def _graph_of(obj: Any) -> Any | None:
    from deepscope.graph.ir import Graph

    if isinstance(obj, Graph):
        return obj
    graph = getattr(obj, "graph", None)
    return graph if isinstance(graph, Graph) else None


def graph_snapshot(graph: Any, name: str) -> embed.Snapshot:
    """A snapshot of `graph` as run `name` (tag "model"): every namespace's level and the
    search index, for the graph explorer."""
    from deepscope.notebook.snapshot import search_index
    from deepscope.server.graph_index import GraphIndex

    index = GraphIndex(graph)
    src = [("run", name), ("tag", "model")]
    answers: dict[str, Any] = {
        embed.request_key("graphs", [("run", name)]): {
            "graphs": [{"tag": "model", "step": 0, "id": 1}]
        },
        embed.request_key("tags", [("run", name)]): {
            "tags": [
                {
                    "run": name,
                    "tag": "model",
                    "kind": "graph",
                    "count": 1,
                    "firstStep": 0,
                    "lastStep": 0,
                }
            ]
        },  # fmt: skip
    }
    levels: dict[str, Any] = {}
    todo = [""]
    while todo:
        ns = todo.pop(0)
        level = json.loads(index.level_json(ns))
        levels[ns] = level
        answers[embed.request_key("graph/level", [*src, ("namespace", ns)])] = level
        for node in level.get("nodes", []):
            child = node.get("namespace") or ""
            if node.get("kind") == "group" and child and child not in levels and child not in todo:
                todo.append(child)
    answers[embed.request_key("graph/search", src)] = search_index(levels)
    return {"format": "deepscope-snapshot", "version": 1, "panel": "graph", "runs": [name],
            "answers": answers, "blobs": {}}  # fmt: skip


def _log(obj: Any, buffer: embed.ViewBuffer) -> None:
    """Log `obj` into `buffer` through its view kind's logger."""
    kind = type(obj).__name__
    if kind == "Activations":
        from deepscope.views.kinds.activations import log_activations

        log_activations(buffer, "activations", obj, 0)
    elif kind == "UnitStats":
        from deepscope.views.kinds.unit_stats import log_unit_stats

        log_unit_stats(buffer, "unit_stats", obj, 0)
    elif callable(getattr(obj, "log", None)):
        obj.log(buffer, kind.removesuffix("Result").lower() or "result", 0)
    else:
        raise DeepscopeError(
            f"cannot show a {kind}: show takes a deepscope result (attribute, activations, "
            "unit_stats, graph, summary, ...), a Run or a log directory"
        )


def _picture(obj: Any, buffer: embed.ViewBuffer | None) -> bytes | None:
    """A PNG of `obj` for the static fallback: its own, else the first PNG it logged."""
    try:
        if hasattr(obj, "png_bytes") and not getattr(obj, "is_tokens", False):
            return bytes(obj.png_bytes(0))
        if type(obj).__name__ == "Activations":
            for layer in obj.layers:
                if layer in obj.tensors and obj.tensors[layer].dim() == 4:
                    return bytes(obj.feature_maps(layer)._repr_png_())
        if hasattr(obj, "_repr_png_"):
            return bytes(obj._repr_png_())
        graph = _graph_of(obj)
        if graph is not None and importlib.util.find_spec("resvg_py") is not None:
            from deepscope.render.svg_graph import render_png

            return render_png(graph, 2)
    except Exception:  # a fallback picture must never break showing the widget
        pass
    if buffer is not None:
        return next((b.data for b in buffer.blobs if b.ext == "png"), None)
    return None


def result_snapshot(obj: Any) -> tuple[embed.Snapshot, bytes | None, str]:
    """`obj`'s snapshot (a fresh run name), its fallback PNG and a caption."""
    n = next(_COUNTER)
    graph = _graph_of(obj)
    if graph is not None:
        name = f"graph {n}"
        caption = f"deepscope graph: {len(graph.nodes)} nodes"
        return graph_snapshot(graph, name), _picture(obj, None), caption
    buffer = embed.ViewBuffer(f"{type(obj).__name__.removesuffix('Result').lower()} {n}")
    _log(obj, buffer)
    snap = buffer.snapshot()
    return snap, _picture(obj, buffer), f"deepscope {snap['panel']}: {type(obj).__name__}"


def save_html(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write one result (or graph) as a self-contained HTML page: its panel, offline."""
    snap, _, caption = result_snapshot(obj)
    out = Path(path)
    out.write_text(embed.report_html(snap, title=caption), encoding="utf-8")
    return out


def mimebundle(obj: Any, **kwargs: Any) -> Any:
    """What a result's ``_repr_mimebundle_`` answers, so a result left as a cell's last line
    shows as its widget (with the PNG/HTML fallbacks nbconvert keeps); without anywidget,
    just the fallbacks. Never raises: IPython falls back to the plain repr."""
    import base64

    try:
        snap, png, caption = result_snapshot(obj)
        if _widgets():
            from deepscope.notebook.widget import ViewWidget

            return ViewWidget(snap, png=png, caption=caption)._repr_mimebundle_(**kwargs)
        data = {"text/html": fallback_html(png, caption)}
        if png:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data
    except Exception:  # noqa: BLE001 - a display hook must not break the cell
        return None


def _widgets() -> bool:
    return importlib.util.find_spec("anywidget") is not None


def show_logdir(
    logdir: str | os.PathLike[str],
    run: str | None = None,
    *,
    tags: list[str] | None = None,
    height: int = 720,
) -> Any:
    """The dashboard of `logdir` (only run `run` when given) as a widget (a snapshot)."""
    from deepscope.notebook.snapshot import snapshot_logdir

    rec = snapshot_logdir(Path(logdir), runs=None if run is None else [run], tags=tags)
    title = f"deepscope: {run or Path(logdir).name}"
    page = embed.report_html(rec.snapshot, title=title)
    if not _widgets():
        return Static(html=_iframe(page, height))
    from deepscope.notebook.widget import DashboardWidget

    return DashboardWidget(page, height=height)


def _iframe(page: str, height: int) -> str:
    import html

    return (f'<iframe sandbox="allow-scripts" style="width:100%;height:{int(height)}px;border:0" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')  # fmt: skip


def show_run(run: Any, *, height: int = 720, **options: Any) -> Any:
    """``run.show()``: flush `run` and show its dashboard (see `show_logdir`)."""
    run.flush()
    return show_logdir(Path(run.directory).parent, run.name, height=height, **options)


def show(obj: Any, run: str | None = None, **options: Any) -> Any:
    """Show a result, a `Run` or a log directory inline (see the module docstring). In
    IPython the widget is displayed and returned; elsewhere it is returned.

    Example:
        >>> deepscope.show(deepscope.attribute(model, x, target=3))  # doctest: +SKIP
        >>> deepscope.show("runs", run="mnist")  # doctest: +SKIP
    """
    if isinstance(obj, str | os.PathLike):
        widget = show_logdir(obj, run, **options)
    elif hasattr(obj, "directory") and hasattr(obj, "flush") and hasattr(obj, "log_blob"):
        widget = show_run(obj, **options)
    else:
        snap, png, caption = result_snapshot(obj)
        if _widgets():
            from deepscope.notebook.widget import ViewWidget

            widget = ViewWidget(snap, png=png, caption=caption)
        else:
            widget = Static(png=png, html=fallback_html(png, caption))
    return _display(widget)


def _display(widget: Any) -> Any:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return widget
    if get_ipython() is None:
        return widget
    display(widget)  # type: ignore[no-untyped-call]
    return None
