// A fast layered layout (O(nodes + edges) per sweep) for levels too big for ELK in interactive
// time: ELK layered needs ~1 s for 700 nodes on a small CPU, and many seconds for 5,000.
// Layers by longest path (edges against model order are reversed), orders each layer by the
// barycentre of its predecessors, then packs layers left to right around those barycentres.
import { LAYER_GAP, LEVEL_PAD, NODE_GAP, type LayoutRequest, type LayoutResult } from './layoutTypes';

export function quickLayout(req: LayoutRequest): LayoutResult {
  const n = req.nodes.length;
  const index = new Map<string, number>();
  req.nodes.forEach((node, i) => index.set(node.id, i));
  const preds: number[][] = Array.from({ length: n }, () => []);
  const succs: number[][] = Array.from({ length: n }, () => []);
  const pairs: [number, number][] = [];
  for (const e of req.edges) {
    const a = index.get(e.src);
    const b = index.get(e.dst);
    if (a !== undefined && b !== undefined && a !== b) pairs.push([a, b]);
  }
  // A level lists groups and ops in model order, which need not follow the edges (a group
  // may come before the op that feeds it): rank by a topological order of the edges, and
  // reverse only the edges that close a cycle.
  const rank = topoRank(n, pairs);
  for (let [a, b] of pairs) {
    if (rank[a] > rank[b]) [a, b] = [b, a];
    preds[b].push(a);
    succs[a].push(b);
  }
  const layer = new Array<number>(n).fill(0);
  const byRank = new Array<number>(n);
  for (let v = 0; v < n; v++) byRank[rank[v]] = v;
  for (const v of byRank) {
    const c = req.nodes[v].constraint;
    if (c === 'FIRST') continue;
    let l = 0;
    for (const p of preds[v]) l = Math.max(l, layer[p] + 1);
    layer[v] = l;
  }
  // Longest path puts every source in layer 0: a model whose weights are nodes (ONNX
  // ConstantOfShape / Constant, a traced get_attr) would get one huge first layer with long
  // edges down to each consumer. `hang` nodes (no input reaches them) sink to just above
  // their first consumer instead, latest first so a constant feeding a constant follows it
  // (as render/layout.py does for static SVGs).
  for (let r = n - 1; r >= 0; r--) {
    const v = byRank[r];
    if (req.nodes[v].hang !== true || succs[v].length === 0) continue;
    let l = Number.POSITIVE_INFINITY;
    for (const s of succs[v]) l = Math.min(l, layer[s] - 1);
    layer[v] = Math.max(layer[v], l);
  }
  let maxLayer = 0;
  for (let v = 0; v < n; v++) if (req.nodes[v].constraint !== 'LAST') maxLayer = Math.max(maxLayer, layer[v]);
  for (let v = 0; v < n; v++) if (req.nodes[v].constraint === 'LAST') layer[v] = maxLayer + 1;

  // A source has no predecessor to centre on. First pass: beside the other inputs of its
  // consumers (placed already: they are in earlier layers), e.g. a weight beside the
  // activation entering its conv; NaN when there are none (packed from the left). Second
  // pass: above its consumers as the first pass placed them.
  const layers: number[][] = [];
  for (let v = 0; v < n; v++) (layers[layer[v]] ??= []).push(v);
  const x = new Array<number>(n).fill(0);
  const y = new Array<number>(n).fill(0);
  const centre = (v: number): number => x[v] + req.nodes[v].w / 2;
  const besideConsumers = (v: number): number => {
    let s = 0;
    let k = 0;
    for (const c of succs[v]) {
      for (const p of preds[c]) {
        if (p === v || layer[p] >= layer[v]) continue;
        s += centre(p);
        k += 1;
      }
    }
    return k === 0 ? Number.NaN : s / k;
  };
  const place = (hint: number[] | null): { width: number; height: number } => {
    let top = LEVEL_PAD;
    let width = 0;
    for (const members of layers) {
      if (members === undefined) continue;
      const want = members.map((v) => {
        if (preds[v].length === 0) {
          return hint !== null && succs[v].length > 0 ? hint[v] : besideConsumers(v);
        }
        let s = 0;
        for (const p of preds[v]) s += centre(p);
        return s / preds[v].length;
      });
      const order = members.map((_, i) => i);
      order.sort((a, b) => {
        const wa = want[a];
        const wb = want[b];
        if (Number.isNaN(wa) || Number.isNaN(wb)) return a - b;
        return wa - wb || a - b;
      });
      let cursor = LEVEL_PAD;
      let h = 0;
      for (const i of order) {
        const v = members[i];
        const node = req.nodes[v];
        const c = Number.isNaN(want[i]) ? cursor + node.w / 2 : want[i];
        x[v] = Math.max(cursor, c - node.w / 2);
        y[v] = top;
        cursor = x[v] + node.w + NODE_GAP;
        h = Math.max(h, node.h);
      }
      width = Math.max(width, cursor - NODE_GAP + LEVEL_PAD);
      top += h + LAYER_GAP;
    }
    return { width, height: top - LAYER_GAP + LEVEL_PAD };
  };
  let size = place(null);
  if (req.nodes.some((_, v) => preds[v].length === 0 && succs[v].length > 0)) {
    const hint = req.nodes.map((_, v) => {
      if (succs[v].length === 0) return Number.NaN;
      let s = 0;
      for (const c of succs[v]) s += centre(c);
      return s / succs[v].length;
    });
    size = place(hint);
  }
  // An edge over two or more layers drawn straight would run behind the nodes between its
  // ends (a DenseNet or ResNet column hides every skip connection): it goes around their
  // right side instead, each one a little further out so that parallel detours stay apart.
  const span = rangeExtents(layers, x, req.nodes.map((node) => node.w));
  let detours = 0;
  let width = size.width;
  const edges = req.edges.map((e) => {
    const a = index.get(e.src);
    const b = index.get(e.dst);
    if (a === undefined || b === undefined || a === b) return [];
    const na = req.nodes[a];
    const nb = req.nodes[b];
    const xa = x[a] + na.w / 2;
    const xb = x[b] + nb.w / 2;
    const straight = [xa, y[a] + na.h, xb, y[b]];
    if (layer[b] - layer[a] < 2) return straight;
    const [left, right] = span(layer[a] + 1, layer[b] - 1);
    if (Math.max(xa, xb) < left || Math.min(xa, xb) > right) return straight;
    const out = right + NODE_GAP / 2 + 6 * (detours++ % 6);
    width = Math.max(width, out + LEVEL_PAD);
    const bend = LAYER_GAP / 2;
    return [xa, y[a] + na.h, out, y[a] + na.h + bend, out, y[b] - bend, xb, y[b]];
  });
  return { width, height: size.height, x, y, edges };
}

/** `(lo, hi) => [left, right]`: the leftmost and rightmost extent of the nodes in layers lo..hi
 * (a sparse table: O(L log L) to build, O(1) a query). */
function rangeExtents(
  layers: number[][],
  x: number[],
  w: number[],
): (lo: number, hi: number) => [number, number] {
  const n = layers.length;
  const lefts: number[][] = [new Array<number>(n).fill(Number.POSITIVE_INFINITY)];
  const rights: number[][] = [new Array<number>(n).fill(Number.NEGATIVE_INFINITY)];
  layers.forEach((members, l) => {
    for (const v of members ?? []) {
      lefts[0][l] = Math.min(lefts[0][l], x[v]);
      rights[0][l] = Math.max(rights[0][l], x[v] + w[v]);
    }
  });
  for (let k = 1; 1 << k <= n; k++) {
    const half = 1 << (k - 1);
    const pl = lefts[k - 1];
    const pr = rights[k - 1];
    lefts.push(pl.map((v, i) => (i + half < n ? Math.min(v, pl[i + half]) : v)));
    rights.push(pr.map((v, i) => (i + half < n ? Math.max(v, pr[i + half]) : v)));
  }
  return (lo, hi) => {
    const k = Math.floor(Math.log2(hi - lo + 1));
    const j = hi - (1 << k) + 1;
    return [Math.min(lefts[k][lo], lefts[k][j]), Math.max(rights[k][lo], rights[k][j])];
  };
}

/** Each node's position in a topological order of `edges` (Kahn's, O(nodes + edges)); when
 * only cycles are left, the first unplaced node in model order goes next. */
function topoRank(n: number, edges: [number, number][]): number[] {
  const indeg = new Array<number>(n).fill(0);
  const out: number[][] = Array.from({ length: n }, () => []);
  for (const [a, b] of edges) {
    out[a].push(b);
    indeg[b] += 1;
  }
  const rank = new Array<number>(n).fill(-1);
  const queue: number[] = [];
  for (let v = 0; v < n; v++) if (indeg[v] === 0) queue.push(v);
  let head = 0;
  let next = 0;
  let scan = 0;
  while (next < n) {
    if (head === queue.length) {
      while (rank[scan] !== -1) scan += 1;
      indeg[scan] = 0;
      queue.push(scan);
    }
    const v = queue[head++];
    if (rank[v] !== -1) continue;
    rank[v] = next++;
    for (const w of out[v]) {
      indeg[w] -= 1;
      if (indeg[w] === 0 && rank[w] === -1) queue.push(w);
    }
  }
  return rank;
}
