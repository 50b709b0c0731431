// Wire types of the graph endpoints (docs/api.md: /api/graphs, /api/graph/level, /api/graph/search).

export type Dim = number | null;
export type Shape = Dim[] | null;
/** Overlay value; `getJson` has already decoded {"nonfinite": ...} into NaN / ±Infinity. */
export type OverlayValue = number | null;

export interface TensorMeta {
  shape: Shape;
  dtype: string | null;
}

export interface ParamInfo {
  name: string;
  shape: number[];
  dtype: string;
  trainable: boolean;
}

export interface LevelNode {
  id: string;
  kind: 'group' | 'op';
  label: string;
  op: string;
  moduleType: string;
  namespace: string;
  params: number;
  trainableParams: number;
  macs: number;
  opCount: number;
  childCount: number;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  attrs: Record<string, unknown>;
  paramRefs: ParamInfo[];
  overlays: Record<string, OverlayValue>;
  /** Group nodes: ids of its own children that receive an edge from outside the group (or hold
   * a graph input) / send one out (or hold a graph output). Null when the server does not say
   * (older servers, op nodes): the explorer then guesses from the group's own level. */
  entries: string[] | null;
  exits: string[] | null;
}

export interface LevelEdge {
  src: string;
  dst: string;
  shape: Shape;
  dtype: string | null;
}

export interface Level {
  namespace: string;
  meta: Record<string, unknown>;
  overlayNames: string[];
  nodes: LevelNode[];
  edges: LevelEdge[];
  inputs: string[];
  outputs: string[];
  truncated: boolean;
}

export interface SearchMatch {
  id: string;
  label: string;
  op: string;
  namespace: string;
}

export interface GraphEntry {
  tag: string;
  step: number | null;
  id: string;
}

/** Where a graph comes from: a run's graph blob (by tag) or the model served by `deepscope view`. */
export interface GraphSource {
  run: string | null;
  model: boolean;
  tag: string | null;
}

/** The namespace a group node stands for (`ns:<namespace>`); null for an op node. */
export function groupNamespace(id: string): string | null {
  return id.startsWith('ns:') ? id.slice(3) : null;
}

/** The prefixes of a namespace, shortest first: "a/b/c" -> ["a", "a/b", "a/b/c"]. */
export function namespacePrefixes(ns: string): string[] {
  if (ns === '') return [];
  const parts = ns.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

export function parentNamespace(ns: string): string {
  const i = ns.lastIndexOf('/');
  return i < 0 ? '' : ns.slice(0, i);
}
