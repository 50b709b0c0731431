// Explorer state: fetched levels, their base layouts, and which groups are expanded.
// Incremental by design: only the levels of expanded groups are ever fetched
// (`/api/graph/level`), never the whole graph.
import { getJson } from '../../api';
import { layout } from './layoutClient';
import type { LayoutEdgeIn, LayoutNodeIn } from './layoutTypes';
import { collapsedSize, PORT } from './text';
import {
  groupNamespace,
  namespacePrefixes,
  parentNamespace,
  type GraphSource,
  type Level,
  type LevelNode,
  type SearchMatch,
} from './types';

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A level laid out with every child collapsed. `boxes[i]` is `level.nodes[i]`; ports are the
 * virtual input/output nodes inside a group; edge endpoints refer to box indices, or
 * PORT_IN / PORT_OUT. Shared by every level with the same structure (the layout cache). */
export interface BaseLayout {
  width: number;
  height: number;
  boxes: Box[];
  portIn: Box | null;
  portOut: Box | null;
  edges: { src: number; dst: number; pts: number[]; edge: number }[];
}

export const PORT_IN = -1;
export const PORT_OUT = -2;
const PORT_IN_ID = '\u0000in';
const PORT_OUT_ID = '\u0000out';

export interface LayoutStats {
  elkCalls: number;
  cacheHits: number;
}

function idList(v: unknown): string[] | null {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null;
}

function normalise(raw: Partial<Level>, ns: string): Level {
  const nodes = (raw.nodes ?? []).map(
    (n): LevelNode => ({
      id: n.id,
      kind: n.kind === 'group' ? 'group' : 'op',
      label: n.label ?? '',
      op: n.op ?? '',
      moduleType: n.moduleType ?? '',
      namespace: n.namespace ?? ns,
      params: n.params ?? 0,
      trainableParams: n.trainableParams ?? 0,
      macs: n.macs ?? 0,
      opCount: n.opCount ?? 0,
      childCount: n.childCount ?? 0,
      inputs: n.inputs ?? [],
      outputs: n.outputs ?? [],
      attrs: n.attrs ?? {},
      paramRefs: n.paramRefs ?? [],
      overlays: n.overlays ?? {},
      entries: idList(n.entries),
      exits: idList(n.exits),
    }),
  );
  return {
    namespace: raw.namespace ?? ns,
    meta: raw.meta ?? {},
    overlayNames: raw.overlayNames ?? [],
    nodes,
    edges: raw.edges ?? [],
    inputs: raw.inputs ?? [],
    outputs: raw.outputs ?? [],
    truncated: raw.truncated ?? false,
  };
}

interface Ports {
  entries: string[];
  exits: string[];
}

/** The children of a group's level where data enters and leaves it: the group node's own
 * `entries` / `exits` when the server sent them; otherwise a guess from the level alone (the
 * graph's inputs/outputs it holds, else the children with no producer / no consumer in it).
 * The top level has no ports. */
function levelPorts(level: Level, owner: LevelNode | undefined, top: boolean): Ports | null {
  if (top) return null;
  const guess = (ends: string[], side: 'src' | 'dst'): string[] => {
    if (ends.length > 0) return ends;
    const linked = new Set(level.edges.map((e) => e[side]));
    return level.nodes.filter((n) => !linked.has(n.id)).map((n) => n.id);
  };
  return {
    entries: owner?.entries ?? guess(level.inputs, 'dst'),
    exits: owner?.exits ?? guess(level.outputs, 'src'),
  };
}

/** Structure signature: levels with equal signatures (e.g. two BasicBlocks) share one layout. */
function signature(level: Level, moduleType: string, ports: Ports | null): string {
  const idx = new Map(level.nodes.map((n, i) => [n.id, i]));
  const parts = [moduleType, String(level.nodes.length)];
  for (const n of level.nodes) parts.push(`${n.kind[0]}${n.op}:${n.moduleType}`);
  for (const e of level.edges) parts.push(`${idx.get(e.src) ?? 'x'}>${idx.get(e.dst) ?? 'x'}`);
  if (ports === null) parts.push('top');
  else {
    parts.push(`i${ports.entries.map((id) => idx.get(id) ?? 'x').join(',')}`);
    parts.push(`o${ports.exits.map((id) => idx.get(id) ?? 'x').join(',')}`);
  }
  return parts.join('|');
}

export class Explorer {
  readonly levels = new Map<string, Level>();
  readonly layouts = new Map<string, BaseLayout>();
  readonly expanded = new Set<string>();
  readonly nodes = new Map<string, LevelNode>();
  readonly stats: LayoutStats = { elkCalls: 0, cacheHits: 0 };
  overlayNames: string[] = [];
  version = 0;
  private readonly loading = new Map<string, Promise<void>>();
  private readonly cache = new Map<string, Promise<BaseLayout>>();

  constructor(
    readonly source: GraphSource,
    private readonly changed: () => void,
  ) {}

  /** Fetch the top level and lay it out. */
  open(): Promise<void> {
    return this.load('').then(() => this.bump());
  }

  /** Fetch and lay out a level ahead of its expansion (e.g. on hover); errors surface later. */
  prefetch(ns: string): void {
    this.load(ns).catch(() => undefined);
  }

  /** Namespaces whose level was cut at the server's per-level node limit. */
  truncated(): string[] {
    return [...this.levels.values()].filter((l) => l.truncated).map((l) => l.namespace);
  }

  isExpanded(ns: string): boolean {
    return this.expanded.has(ns);
  }

  async expand(ns: string): Promise<void> {
    await Promise.all(namespacePrefixes(ns).map((p) => this.load(p)));
    for (const p of namespacePrefixes(ns)) this.expanded.add(p);
    this.bump();
  }

  collapse(ns: string): void {
    for (const e of [...this.expanded]) if (e === ns || e.startsWith(`${ns}/`)) this.expanded.delete(e);
    this.bump();
  }

  toggle(ns: string): Promise<void> {
    if (this.expanded.has(ns)) {
      this.collapse(ns);
      return Promise.resolve();
    }
    return this.expand(ns);
  }

  /** Expand the groups above a search match so it becomes visible; returns the id to show. */
  async reveal(match: SearchMatch): Promise<string> {
    const own = groupNamespace(match.id);
    const ns = own === null ? match.namespace : parentNamespace(own);
    if (ns !== '') await this.expand(ns);
    return match.id;
  }

  private bump(): void {
    this.version++;
    this.changed();
  }

  private load(ns: string): Promise<void> {
    let p = this.loading.get(ns);
    if (p === undefined) {
      p = this.fetchAndLayout(ns);
      this.loading.set(ns, p);
      p.catch(() => this.loading.delete(ns));
    }
    return p;
  }

  private async fetchAndLayout(ns: string): Promise<void> {
    const { run, tag, model } = this.source;
    const raw = await getJson<Partial<Level>>('graph/level', {
      run: model ? undefined : run,
      model: model ? 1 : undefined,
      tag: tag ?? undefined,
      namespace: ns,
    });
    const level = normalise(raw, ns);
    // The group's node (its entries/exits) lives in the parent level, fetched alongside when
    // several levels open at once (a deep search hit): wait for it, never guess without it.
    if (ns !== '' && !this.nodes.has(`ns:${ns}`)) await this.load(parentNamespace(ns));
    const owner = ns === '' ? undefined : this.nodes.get(`ns:${ns}`);
    const base = await this.baseLayout(level, levelPorts(level, owner, ns === ''), owner?.moduleType ?? '');
    this.levels.set(ns, level);
    this.layouts.set(ns, base);
    for (const n of level.nodes) this.nodes.set(n.id, n);
    for (const name of level.overlayNames) {
      if (!this.overlayNames.includes(name)) this.overlayNames.push(name);
    }
  }

  private baseLayout(level: Level, ports: Ports | null, moduleType: string): Promise<BaseLayout> {
    const key = signature(level, moduleType, ports);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.stats.cacheHits++;
      return hit;
    }
    this.stats.elkCalls++;
    const p = this.computeLayout(level, ports);
    this.cache.set(key, p);
    p.catch(() => this.cache.delete(key));
    return p;
  }

  private async computeLayout(level: Level, ports: Ports | null): Promise<BaseLayout> {
    const idx = new Map(level.nodes.map((n, i) => [n.id, i]));
    const nodes: LayoutNodeIn[] = level.nodes.map((n) => ({ id: n.id, ...collapsedSize(n) }));
    const edges: LayoutEdgeIn[] = level.edges.map((e) => ({ src: e.src, dst: e.dst }));
    const refs: { src: number; dst: number; edge: number }[] = level.edges.map((e, i) => ({
      src: idx.get(e.src) ?? Number.NaN,
      dst: idx.get(e.dst) ?? Number.NaN,
      edge: i,
    }));
    // Inside a group, edges entering it run from its input port to its entry children and
    // edges leaving it from its exit children to its output port.
    const entries = ports?.entries ?? [];
    const exits = ports?.exits ?? [];
    const hasIn = entries.some((id) => idx.has(id));
    const hasOut = exits.some((id) => idx.has(id));
    if (hasIn) {
      nodes.push({ id: PORT_IN_ID, w: PORT, h: PORT, constraint: 'FIRST' });
      for (const id of entries) {
        if (!idx.has(id)) continue;
        edges.push({ src: PORT_IN_ID, dst: id });
        refs.push({ src: PORT_IN, dst: idx.get(id) ?? 0, edge: -1 });
      }
    }
    if (hasOut) {
      nodes.push({ id: PORT_OUT_ID, w: PORT, h: PORT, constraint: 'LAST' });
      for (const id of exits) {
        if (!idx.has(id)) continue;
        edges.push({ src: id, dst: PORT_OUT_ID });
        refs.push({ src: idx.get(id) ?? 0, dst: PORT_OUT, edge: -1 });
      }
    }
    markHanging(nodes, edges, (i) => i < level.nodes.length && level.nodes[i].op === 'input');
    const r = await layout(nodes, edges);
    const boxes = level.nodes.map((_, i) => ({ x: r.x[i], y: r.y[i], w: nodes[i].w, h: nodes[i].h }));
    const portBox = (id: string): Box | null => {
      const i = nodes.findIndex((n) => n.id === id);
      return i < 0 ? null : { x: r.x[i], y: r.y[i], w: PORT, h: PORT };
    };
    return {
      width: r.width,
      height: r.height,
      boxes,
      portIn: portBox(PORT_IN_ID),
      portOut: portBox(PORT_OUT_ID),
      edges: refs
        .map((ref, i) => ({ ...ref, pts: r.edges[i] ?? [] }))
        .filter((e) => e.pts.length >= 4 && !Number.isNaN(e.src) && !Number.isNaN(e.dst)),
    };
  }
}

/** Set `hang` on the nodes that no start reaches (a start: an `input` op or the level's input
 * port), as `render/svg_graph.py:_hanging` does; none when the level has no start. */
function markHanging(nodes: LayoutNodeIn[], edges: LayoutEdgeIn[], isInput: (i: number) => boolean): void {
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const succ: number[][] = nodes.map(() => []);
  for (const e of edges) {
    const a = index.get(e.src);
    const b = index.get(e.dst);
    if (a !== undefined && b !== undefined) succ[a].push(b);
  }
  const stack: number[] = [];
  nodes.forEach((n, i) => {
    if (isInput(i) || n.constraint === 'FIRST') stack.push(i);
  });
  if (stack.length === 0) return;
  const seen = new Array<boolean>(nodes.length).fill(false);
  for (const i of stack) seen[i] = true;
  while (stack.length > 0) {
    for (const m of succ[stack.pop() as number]) {
      if (!seen[m]) {
        seen[m] = true;
        stack.push(m);
      }
    }
  }
  nodes.forEach((n, i) => {
    if (!seen[i]) n.hang = true;
  });
}
