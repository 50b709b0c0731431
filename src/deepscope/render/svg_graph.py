"""A static drawing of a Graph IR: SVG text written by deepscope (no graphviz), and PNG
through resvg (``pip install 'deepscope[png]'``).

Every label is escaped and stripped of characters XML cannot hold: node names come from
untrusted model files (THREATS.md D5).

Example:
    >>> from deepscope.graph.ir import Graph, Node
    >>> svg = render_svg(Graph(nodes=[Node("a", "relu", label="<b>")]))
    >>> "&lt;b&gt;" in svg and "<b>" not in svg
    True
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from deepscope.errors import OptionalDependencyError
from deepscope.graph.aggregate import aggregate
from deepscope.graph.collapse import collapse
from deepscope.graph.ir import Graph, Node, Shape
from deepscope.render.layout import layered_layout

__all__ = ["render_png", "render_svg"]

_CHAR_W = 7.0  # px per character at 12 px sans-serif (generous, so text fits its box)
_LINE_H = 16.0
_MAX_LABEL = 48
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

_FILL = {"group": "#e8f0fe", "input": "#e6f4ea", "output": "#fce8e6"}
_STROKE = {"group": "#4a6fa5", "input": "#3c8a4f", "output": "#b3261e"}


def _clean(text: str) -> str:
    text = _BAD_XML.sub("\ufffd", text)
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "\u2026"


def _shape_text(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _lines(node: Node) -> list[str]:
    outs = ", ".join(_shape_text(t.shape) for t in node.outputs[:2])
    if len(node.outputs) > 2:
        outs += ", \u2026"
    if node.op == "group":
        mtype = str(node.attrs.get("moduleType") or "")
        path = node.namespace.replace("/", ".") or node.label
        title = f"{path}: {mtype}" if mtype else path
        params = int(node.attrs.get("params") or 0)
        detail = f"{_human(params)} params" if params else ""
        if node.macs:
            detail += (" \u00b7 " if detail else "") + f"{_human(node.macs)} MACs"
        return [t for t in (title, outs, detail) if t]
    if node.op in ("input", "output"):
        return [f"{node.op}: {node.label}" if node.label != node.op else node.op, outs]
    title = node.op if node.label in ("", node.op) else f"{node.op} ({node.label})"
    return [t for t in (title, outs) if t]


def render_svg(graph: Graph, depth: int | None = None) -> str:
    """SVG text of `graph`, collapsed to module `depth` (None: every op). Sized to fit."""
    if not graph.groups:
        aggregate(graph)
    g = collapse(graph, depth) if depth else graph
    texts = {n.id: [_clean(t) for t in _lines(n)] for n in g.nodes}
    sizes = {
        nid: (max(80.0, 16 + _CHAR_W * max(len(t) for t in lines)), 10 + _LINE_H * len(lines))
        for nid, lines in texts.items()
    }
    ids = [n.id for n in g.nodes]
    lay = layered_layout(ids, [(e.src, e.dst) for e in g.edges], sizes)
    w, h = max(lay.width, 120.0), max(lay.height, 60.0)
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" '
        'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>',
        f'<rect width="{w:.0f}" height="{h:.0f}" fill="#ffffff"/>',
        '<g class="edges">',
    ]
    for src, dst, pts in lay.routes:
        (x0, y0), (x1, y1) = pts[0], pts[-1]
        pts = [(x0, y0 + sizes[src][1] / 2), *pts[1:-1], (x1, y1 - sizes[dst][1] / 2)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(pts))
        out.append(
            f'<path class="edge" d="{d}" fill="none" stroke="#777" stroke-width="1.2" '
            'marker-end="url(#arrow)"/>'
        )
    out.append("</g>")
    kinds = {n.id: n.op for n in g.nodes}
    for nid in ids:
        x, y = lay.positions[nid]
        bw, bh = sizes[nid]
        kind = kinds[nid] if kinds[nid] in _FILL else "op"
        fill, stroke = _FILL.get(kind, "#f8f9fa"), _STROKE.get(kind, "#5f6368")
        out.append(f'<g class="node" data-id={quoteattr(_clean(nid))}>')
        out.append(
            f'<rect x="{x - bw / 2:.1f}" y="{y - bh / 2:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
            f'rx="{8 if kind == "group" else 3}" fill="{fill}" stroke="{stroke}"/>'
        )
        lines = texts[nid]
        top = y - bh / 2 + 5 + _LINE_H * 0.75
        for i, line in enumerate(lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            color = "#202124" if i == 0 else "#5f6368"
            out.append(
                f'<text x="{x:.1f}" y="{top + i * _LINE_H:.1f}" text-anchor="middle" '
                f'fill="{color}"{weight}>{escape(line)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def render_png(graph: Graph, depth: int | None = None, *, zoom: float = 1.0) -> bytes:
    """PNG bytes of `render_svg(graph, depth)`. Needs resvg: ``pip install 'deepscope[png]'``."""
    try:
        import resvg_py
    except ImportError as exc:
        raise OptionalDependencyError(
            "PNG export needs the 'resvg_py' package: pip install 'deepscope[png]' "
            "(or write .svg and convert it yourself)"
        ) from exc
    svg = render_svg(graph, depth)
    return bytes(resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", zoom=zoom))
