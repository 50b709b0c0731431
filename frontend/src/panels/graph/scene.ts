// From explorer state to absolute geometry: lays each expanded group's level inside its box.
// A level's base layout (all children collapsed) comes from ELK once; expanding a child grows
// its box in place and pushes what lies below it down and what lies right of it in its layer
// to the right, so everything else keeps its relative position and no new layout is needed.
import { PORT_IN, PORT_OUT, type BaseLayout, type Box, type Explorer } from './explorer';
import { LEVEL_PAD } from './layoutTypes';
import { CHAR_W, displayLabel, formatShape, GLYPH_W, HEADER_H, LABEL_CHAR_W, subtitle } from './text';
import { groupNamespace, type LevelNode } from './types';

export interface SceneNode extends Box {
  node: LevelNode;
  expanded: boolean;
  depth: number;
}

export interface SceneEdge {
  key: string;
  pts: number[];
  label: string;
  /** The ids of the nodes the edge joins on its level ('' for a port end). */
  src: string;
  dst: string;
  /** A port edge inside an expanded group: data entering ('in', port to `child`) or leaving it
   * ('out', `child` to port); `group` is the group node's id. */
  port?: PortLink;
  /** Bounding box, for culling. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface PortLink {
  dir: 'in' | 'out';
  group: string;
  child: string;
}

export interface Scene {
  nodes: SceneNode[];
  edges: SceneEdge[];
  ports: Box[];
  width: number;
  height: number;
  byId: Map<string, SceneNode>;
}

interface Arranged {
  width: number;
  height: number;
  boxes: Box[];
  ports: (Box | null)[]; // [in, out]
  edges: { pts: number[]; label: string; key: string; src: string; dst: string; port?: PortLink }[];
  inner: Map<number, Arranged>;
}

function headerWidth(n: LevelNode): number {
  return Math.ceil(Math.max(displayLabel(n).length * LABEL_CHAR_W + GLYPH_W, subtitle(n).length * CHAR_W)) + 30;
}

/** Grow box `a` to (w, h) in place, moving the rest of its level out of the way. */
function grow(a: Box, w: number, h: number, others: Box[], pts: number[][]): void {
  const dw = w - a.w;
  const dh = h - a.h;
  const bottom = a.y + a.h;
  const cx = a.x + a.w / 2;
  for (const b of others) {
    if (b === a) continue;
    if (b.y >= bottom) b.y += dh;
    else if (b.y + b.h > a.y && b.x + b.w / 2 > cx) b.x += dw;
  }
  for (const p of pts) {
    for (let k = 2; k < p.length - 2; k += 2) {
      if (p[k + 1] > bottom) p[k + 1] += dh;
      else if (p[k + 1] >= a.y && p[k] > cx) p[k] += dw;
    }
  }
  a.w = w;
  a.h = h;
}

function anchor(p: number, base: Box, now: Box, horizontal: boolean): number {
  if (horizontal) return now.x + (base.w === 0 ? 0 : ((p - base.x) / base.w) * now.w);
  return now.y + (base.h === 0 ? 0 : ((p - base.y) / base.h) * now.h);
}

function arrange(ex: Explorer, ns: string): Arranged {
  const level = ex.levels.get(ns);
  const base = ex.layouts.get(ns) as BaseLayout;
  if (level === undefined) throw new Error(`level ${ns} not loaded`);
  const boxes = base.boxes.map((b) => ({ ...b }));
  const ports = [base.portIn, base.portOut].map((b) => (b === null ? null : { ...b }));
  const pts = base.edges.map((e) => e.pts.slice());
  const inner = new Map<number, Arranged>();
  const open = level.nodes
    .map((n, i) => ({ n, i, gns: groupNamespace(n.id) }))
    .filter((c) => c.gns !== null && ex.expanded.has(c.gns) && ex.layouts.has(c.gns))
    .sort((a, b) => base.boxes[a.i].y - base.boxes[b.i].y || base.boxes[a.i].x - base.boxes[b.i].x);
  const all = [...boxes, ...ports.filter((p): p is Box => p !== null)];
  for (const c of open) {
    const child = arrange(ex, c.gns as string);
    inner.set(c.i, child);
    grow(boxes[c.i], Math.max(child.width, headerWidth(c.n)), HEADER_H + child.height, all, pts);
  }
  const boxOf = (ref: number, layout: BaseLayout | null): Box | null => {
    if (ref === PORT_IN) return layout === null ? ports[0] : layout.portIn;
    if (ref === PORT_OUT) return layout === null ? ports[1] : layout.portOut;
    return layout === null ? boxes[ref] : layout.boxes[ref];
  };
  const edges = base.edges.map((e, k) => {
    const p = pts[k];
    const n = p.length;
    const s0 = boxOf(e.src, base);
    const s1 = boxOf(e.src, null);
    const d0 = boxOf(e.dst, base);
    const d1 = boxOf(e.dst, null);
    if (s0 && s1) [p[0], p[1]] = [anchor(p[0], s0, s1, true), anchor(p[1], s0, s1, false)];
    if (d0 && d1) [p[n - 2], p[n - 1]] = [anchor(p[n - 2], d0, d1, true), anchor(p[n - 1], d0, d1, false)];
    const wire = e.edge >= 0 ? level.edges[e.edge] : undefined;
    const label = wire === undefined ? '' : `${wire.dtype ?? '?'} ${formatShape(wire.shape)}`;
    const group = `ns:${ns}`;
    const port: PortLink | undefined =
      e.src === PORT_IN
        ? { dir: 'in', group, child: level.nodes[e.dst]?.id ?? '' }
        : e.dst === PORT_OUT
          ? { dir: 'out', group, child: level.nodes[e.src]?.id ?? '' }
          : undefined;
    const src = level.nodes[e.src]?.id ?? '';
    const dst = level.nodes[e.dst]?.id ?? '';
    return { pts: p, label, key: `${ns}#${k}`, src, dst, port };
  });
  let width = base.width;
  let height = base.height;
  for (const b of all) {
    width = Math.max(width, b.x + b.w + LEVEL_PAD);
    height = Math.max(height, b.y + b.h + LEVEL_PAD);
  }
  return { width, height, boxes, ports, edges, inner };
}

function place(ex: Explorer, ns: string, a: Arranged, ox: number, oy: number, depth: number, out: Scene): void {
  const level = ex.levels.get(ns);
  if (level === undefined) return;
  a.boxes.forEach((b, i) => {
    const node = level.nodes[i];
    const child = a.inner.get(i);
    const sn: SceneNode = { x: ox + b.x, y: oy + b.y, w: b.w, h: b.h, node, expanded: child !== undefined, depth };
    out.nodes.push(sn);
    out.byId.set(node.id, sn);
    if (child !== undefined) {
      const gns = groupNamespace(node.id) as string;
      place(ex, gns, child, sn.x + (b.w - child.width) / 2, sn.y + HEADER_H, depth + 1, out);
    }
  });
  for (const p of a.ports) if (p !== null) out.ports.push({ ...p, x: p.x + ox, y: p.y + oy });
  for (const e of a.edges) {
    const pts = e.pts.map((v, k) => v + (k % 2 === 0 ? ox : oy));
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (let k = 0; k < pts.length; k += 2) {
      x0 = Math.min(x0, pts[k]);
      x1 = Math.max(x1, pts[k]);
      y0 = Math.min(y0, pts[k + 1]);
      y1 = Math.max(y1, pts[k + 1]);
    }
    out.edges.push({ key: e.key, pts, label: e.label, src: e.src, dst: e.dst, port: e.port, x0, y0, x1, y1 });
  }
}

export function emptyScene(): Scene {
  return { nodes: [], edges: [], ports: [], width: 0, height: 0, byId: new Map() };
}

export function buildScene(ex: Explorer | null): Scene {
  const scene = emptyScene();
  if (ex === null || !ex.levels.has('')) return scene;
  const root = arrange(ex, '');
  place(ex, '', root, 0, 0, 0, scene);
  scene.width = root.width;
  scene.height = root.height;
  return scene;
}
