"""The notebook widget: an anywidget whose ES module is the frontend's widget entry
(``frontend/src/entries/widget.tsx``, built into ``static/app/embed/widget.js``).

`ViewWidget` carries a snapshot of one result (`ViewBuffer.snapshot`) in its ``payload``
trait and draws that result's panel, the dashboard's own component, in a shadow root;
`DashboardWidget` carries a whole report page in ``html`` and draws it in a sandboxed
iframe. Both answer `_repr_mimebundle_` with the widget view *and* static fallbacks
(``image/png`` when a picture exists, ``text/html``), so nbconvert and plain IPython still
show something. anywidget is optional: ``pip install 'deepscope[notebook]'``.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from deepscope.errors import require
from deepscope.notebook.show import fallback_html
from deepscope.views import embed

__all__ = ["DashboardWidget", "ViewWidget"]

require("anywidget", "notebook")

import anywidget  # noqa: E402
import traitlets  # noqa: E402


class _Fallbacks(anywidget.AnyWidget):  # type: ignore[misc]
    """A widget whose mime bundle also carries static fallbacks."""

    _png: bytes | None = None
    _html: str = ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        if self._png:
            data["image/png"] = base64.b64encode(self._png).decode("ascii")
        if self._html:
            data["text/html"] = self._html
        return data, meta


class ViewWidget(_Fallbacks):
    """One result drawn by its dashboard panel (`payload`: an `embed.Snapshot`)."""

    _esm = embed.widget_esm_path()
    payload = traitlets.Dict().tag(sync=True)
    html = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self, snapshot: embed.Snapshot, *, png: bytes | None = None, caption: str = ""
    ) -> None:
        super().__init__(payload=dict(snapshot))
        self._png = png
        self._html = fallback_html(png, caption or f"deepscope: {snapshot.get('panel')}")


class DashboardWidget(_Fallbacks):
    """A whole dashboard (a report page, `embed.report_html`) in a sandboxed iframe."""

    _esm = embed.widget_esm_path()
    payload = traitlets.Dict().tag(sync=True)
    html = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(720).tag(sync=True)

    def __init__(self, page: str, *, height: int = 720, png: bytes | None = None) -> None:
        super().__init__(html=page, height=height)
        self._png = png
        srcdoc = html.escape(page, quote=True)
        self._html = (
            f'<iframe sandbox="allow-scripts" style="width:100%;height:{int(height)}px;border:0" '
            f'srcdoc="{srcdoc}"></iframe>'
        )
