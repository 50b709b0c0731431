"""A static drawing of a Graph IR: SVG text written by deepscope (no graphviz), and PNG
through resvg (``pip install 'deepscope[png]'``).

Node labels are glyph outlines by default (``text="paths"``: DejaVu Sans from the table
shipped with the package, one ``<path>`` per glyph used in ``<defs>``, placed by ``<use>``;
the file looks the same wherever it is opened, no font needed, as papers want; each line's
string is its group's ``aria-label``). ``text="svg"`` writes ``<text>`` elements instead
(searchable, selectable, smaller, but drawn in whatever font the viewer has).

Every label is escaped and stripped of characters XML cannot hold: node names come from
untrusted model files (docs/threats.md D5).

Example:
    >>> from deepscope.graph.ir import Graph, Node
    >>> svg = render_svg(Graph(nodes=[Node("a", "relu", label="<b>")]))
    >>> "&lt;b&gt;" in svg and "<b>" not in svg
    True
"""

from __future__ import annotations

import re
import warnings
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from deepscope.errors import OptionalDependencyError
from deepscope.graph.aggregate import aggregate
from deepscope.graph.collapse import collapse
from deepscope.graph.fold import fold
from deepscope.graph.gcpause import gc_paused
from deepscope.graph.ir import Graph, Node
from deepscope.render import glyphs
from deepscope.render.glyph_svg import GlyphDefs
from deepscope.render.labels import member_lines, node_lines
from deepscope.render.layout import layered_layout

__all__ = ["ASPECT", "FOLD_ABOVE", "MAX_BOXES", "TextMode", "render_png", "render_svg"]

TextMode = Literal["paths", "svg"]

_CHAR_W = 7.0  # px per character at 12 px sans-serif (generous, so text fits its box)
_LINE_H = 16.0
_FONT_PX = 12.0
_BOLD_PX = 0.6  # the first line's outline stroke: DejaVu Sans Bold is not in the table
_MAX_LABEL = 48
_MAX_MEMBER = 160
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

_FILL = {"group": "#e8f0fe", "repeat": "#f3e8fd", "input": "#e6f4ea", "output": "#fce8e6"}
_STROKE = {"group": "#4a6fa5", "repeat": "#7b3fa0", "input": "#3c8a4f", "output": "#b3261e"}

FOLD_ABOVE = 120  # a drawing of more nodes than this is folded ...
MAX_BOXES = 60  # ... into about this many boxes
ASPECT = 1.25  # tall drawings wrap into columns toward this width / height


def _clean(text: str, limit: int = _MAX_LABEL) -> str:
    text = _BAD_XML.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _hanging(g: Graph) -> set[str]:
    """Nodes no graph input reaches (weights, constants), when the graph has inputs."""
    starts = [n.id for n in g.nodes if n.op == "input"]
    if not starts:
        return set()
    succ: dict[str, list[str]] = {}
    for e in g.edges:
        succ.setdefault(e.src, []).append(e.dst)
    seen = set(starts)
    stack = list(starts)
    while stack:
        for m in succ.get(stack.pop(), ()):
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return {n.id for n in g.nodes if n.id not in seen}


def render_svg(
    graph: Graph,
    depth: int | None = None,
    *,
    fold_above: int | None = FOLD_ABOVE,
    max_boxes: int = MAX_BOXES,
    aspect: float | None = ASPECT,
    text: TextMode = "paths",
) -> str:
    """SVG text of `graph`, collapsed to module `depth` (None: every op). Sized to fit.
    Labels are glyph outlines (`text` ``"paths"``) or ``<text>`` elements (``"svg"``).

    A drawing of more than `fold_above` nodes is folded (`deepscope.graph.fold`) into about
    `max_boxes` boxes: repeated blocks, blocks between single live values, chunks along the
    order; each folded box's ``<title>`` (its tooltip) lists its members. `fold_above`
    None draws every node. A drawing taller than twice its width wraps into columns
    toward width / height = `aspect` (None: one column).
    """
    if text not in ("paths", "svg"):
        raise ValueError(f"text is 'paths' (glyph outlines) or 'svg' (<text>), not {text!r}")
    with gc_paused():
        return _render(graph, depth, fold_above, max_boxes, aspect, text)


def _render(
    graph: Graph,
    depth: int | None,
    fold_above: int | None,
    max_boxes: int,
    aspect: float | None,
    text: TextMode,
) -> str:
    if not graph.groups:
        aggregate(graph)
    g = collapse(graph, depth) if depth else graph
    by_id = {n.id: n for n in g.nodes}
    if fold_above is not None:
        g = fold(g, above=fold_above, max_nodes=max_boxes)
    texts = {n.id: [_clean(t) for t in node_lines(n)] for n in g.nodes}
    sizes = {
        nid: (max(80.0, 16 + _CHAR_W * max(len(t) for t in lines)), 10 + _LINE_H * len(lines))
        for nid, lines in texts.items()
    }
    ids = [n.id for n in g.nodes]
    edges = [(e.src, e.dst) for e in g.edges]
    lay = layered_layout(ids, edges, sizes, hang=_hanging(g), aspect=aspect)
    w, h = max(lay.width, 120.0), max(lay.height, 60.0)
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
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
    defs = GlyphDefs() if text == "paths" else None
    with warnings.catch_warnings(record=True) as missing:
        warnings.simplefilter("always")
        for node in g.nodes:
            at, size = lay.positions[node.id], sizes[node.id]
            out.extend(_node_svg(node, at, size, texts[node.id], by_id, defs))
    if missing:
        warnings.warn(
            f"graph drawing: {len(missing)} label(s) have characters outside the figure font "
            "(drawn as boxes); render_svg(..., text='svg') keeps them as <text>",
            stacklevel=3,
        )
    if defs is not None:
        out.insert(1, defs.defs())
    out.append("</svg>")
    return "\n".join(out)


def _kind(node: Node) -> str:
    fold_kind = node.attrs.get("fold") if node.op == "group" else None
    if fold_kind == "op":
        return "op"
    if fold_kind == "repeat":
        return "repeat"
    return node.op if node.op in _FILL else "op"


def _node_svg(
    node: Node,
    at: tuple[float, float],
    size: tuple[float, float],
    lines: list[str],
    by_id: dict[str, Node],
    defs: GlyphDefs | None,
) -> list[str]:
    (x, y), (bw, bh) = at, size
    kind = _kind(node)
    fill, stroke = _FILL.get(kind, "#f8f9fa"), _STROKE.get(kind, "#5f6368")
    rx = 3 if kind == "op" else 8
    out = [f'<g class="node" data-id={quoteattr(_clean(node.id))}>']
    if node.attrs.get("fold"):
        members = [_clean(m, _MAX_MEMBER) for m in member_lines(node, by_id)]
        head = " \u00b7 ".join(t for t in lines[:1])
        out.append(f"<title>{escape(head)}\n" + escape("\n".join(members)) + "</title>")
    if kind == "repeat":  # a card behind the card: this box stands for several
        out.append(
            f'<rect x="{x - bw / 2 + 5:.1f}" y="{y - bh / 2 + 5:.1f}" width="{bw:.1f}" '
            f'height="{bh:.1f}" rx="{rx}" fill="{fill}" stroke="{stroke}"/>'
        )
    out.append(
        f'<rect x="{x - bw / 2:.1f}" y="{y - bh / 2:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
        f'rx="{rx}" fill="{fill}" stroke="{stroke}"/>'
    )
    top = y - bh / 2 + 5 + _LINE_H * 0.75
    for i, line in enumerate(lines):
        color = "#202124" if i == 0 else "#5f6368"
        if defs is not None:
            out.append(_outlined(line, x, top + i * _LINE_H, color, i == 0, defs))
            continue
        weight = ' font-weight="bold"' if i == 0 else ""
        out.append(
            f'<text x="{x:.1f}" y="{top + i * _LINE_H:.1f}" text-anchor="middle" '
            f'fill="{color}"{weight}>{escape(line)}</text>'
        )
    out.append("</g>")
    return out


def _outlined(line: str, x: float, baseline: float, color: str, bold: bool, defs: GlyphDefs) -> str:
    """One label line centred on `x` as glyph ``<use>``s in a group scaled to font units
    (one ``translate ... scale`` per line, so each glyph is a short ``<use x=...>``)."""
    laid = glyphs.layout(line, _FONT_PX)
    s = _FONT_PX / glyphs.units_per_em()
    uses = "".join(defs.place(g, gx / s) for gx, g in laid.inked)
    stroke = f' stroke="{color}" stroke-width="{_BOLD_PX / s:.0f}"' if bold else ""
    return (
        f'<g class="label" fill="{color}"{stroke} role="img" aria-label={quoteattr(line)} '
        f'transform="translate({x - laid.width / 2:.1f} {baseline:.1f}) scale({s:.6g})">'
        f"{uses}</g>"
    )


def render_png(graph: Graph, depth: int | None = None, *, zoom: float = 1.0) -> bytes:
    """PNG bytes of `render_svg(graph, depth)` (folded and wrapped alike). Needs resvg:
    ``pip install 'deepscope[png]'``."""
    try:
        import resvg_py
    except ImportError as exc:
        raise OptionalDependencyError(
            "PNG export needs the 'resvg_py' package: pip install 'deepscope[png]' "
            "(or write .svg and convert it yourself)"
        ) from exc
    svg = render_svg(graph, depth)
    return bytes(resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", zoom=zoom))
