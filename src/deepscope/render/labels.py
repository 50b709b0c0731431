"""The text lines drawn in each box of the static graph, and the member list of a folded
group (its tooltip). Plain strings: the SVG writer escapes them.

Example:
    >>> from deepscope.graph.ir import Node
    >>> node_lines(Node("g", "group", attrs={"fold": "repeat", "repeats": 3,
    ...     "unit": ["conv", "relu"], "unitLength": 2, "opCount": 6, "computeOps": 6}))[:2]
    ['×3 repeated block', 'conv → relu']
"""

from __future__ import annotations

from typing import Any

from deepscope.graph.ir import Node, Shape

__all__ = ["human", "member_lines", "node_lines"]

_SEQ_MAX = 12  # a unit of up to this many ops is written out; longer ones as counts
_WRAP = 44


def shape_text(shape: Shape | None) -> str:
    """``[1, 3, ?]`` for a shape with a dynamic last dimension, ``?`` when unknown."""
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def human(n: int) -> str:
    """``1.5M`` for 1,500,000."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _wrap(words: list[str], sep: str, max_lines: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for i, w in enumerate(words):
        piece = w + (sep if i < len(words) - 1 else "")
        if cur and len(cur) + len(piece) > _WRAP:
            lines.append(cur.rstrip())
            cur = ""
            if len(lines) == max_lines:
                lines[-1] += " \u2026"
                return lines
        cur += piece
    if cur:
        lines.append(cur.rstrip())
    return lines


def _counts(kinds: Any) -> str:
    parts = [f"{k} \u00d7{c}" if c > 1 else str(k) for k, c in kinds]
    return ", ".join(parts)


def _fold_lines(node: Node) -> list[str]:
    a = node.attrs
    kind = str(a.get("fold"))
    compute = int(a.get("computeOps") or 0)
    members = a.get("members") or []
    consts = max(0, len(members) - compute)
    noun = "constant" if consts == 1 else "constants"
    extra = f" + {consts} {noun}" if consts else ""
    if kind == "op":
        return [str((a.get("opKinds") or [["op"]])[0][0]), f"with {consts} {noun}"]
    ops = int(a.get("opCount") or 0) - consts
    unit = [str(u) for u in a.get("unit") or []]
    if kind == "repeat":
        title = f"\u00d7{a.get('repeats')} repeated block"
        per = int(a.get("unitLength") or len(unit))
        body = _wrap(unit, " \u2192 ", 3) if per <= _SEQ_MAX else [f"{per} ops each"]
        return [title, *body, f"{ops} ops{extra}"]
    first, last = (a.get("span") or [0, 0])[:2]
    title = f"{kind} \u00b7 {ops} ops{extra}"
    if kind == "chunk":
        title = f"ops {first}\u2013{last}{extra}"
    per = int(a.get("unitLength") or len(unit))
    body = _wrap(unit, " \u2192 ", 2) if per <= _SEQ_MAX else [_counts(a.get("opKinds") or [])]
    return [title, *body]


def node_lines(node: Node) -> list[str]:
    """Title, then details: output shapes, params and MACs (groups), fold summaries."""
    outs = ", ".join(shape_text(t.shape) for t in node.outputs[:2])
    if len(node.outputs) > 2:
        outs += ", \u2026"
    if node.op == "group" and node.attrs.get("fold"):
        params = int(node.attrs.get("params") or 0)
        tail = [f"{human(params)} params"] if params else []
        return [*_fold_lines(node), outs, *tail]
    if node.op == "group":
        mtype = str(node.attrs.get("moduleType") or "")
        path = node.namespace.replace("/", ".") or node.label
        title = f"{path}: {mtype}" if mtype else path
        params = int(node.attrs.get("params") or 0)
        detail = f"{human(params)} params" if params else ""
        if node.macs:
            detail += (" \u00b7 " if detail else "") + f"{human(node.macs)} MACs"
        return [t for t in (title, outs, detail) if t]
    if node.op in ("input", "output"):
        return [f"{node.op}: {node.label}" if node.label != node.op else node.op, outs]
    title = node.op if node.label in ("", node.op) else f"{node.op} ({node.label})"
    return [t for t in (title, outs) if t]


def member_lines(node: Node, by_id: dict[str, Node]) -> list[str]:
    """One line per member of a folded group: ``id — op`` (``id — op (label)``)."""
    out = []
    for mid in node.attrs.get("members") or []:
        m = by_id.get(str(mid))
        if m is None:
            out.append(str(mid))
            continue
        what = m.op if m.label in ("", m.op, m.id) else f"{m.op} ({m.label})"
        out.append(f"{m.id} \u2014 {what}")
    return out
