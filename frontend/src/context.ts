import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { RunInfo } from './api';

export interface Dashboard {
  runs: RunInfo[];
  selected: string[];
  setSelected: (runs: string[]) => void;
  colorOf: (run: string) => string;
  /** Store version per run, bumped by live updates; panels re-fetch when it changes. */
  versions: Record<string, number>;
  modelMode: boolean;
}

export const DashboardContext = createContext<Dashboard | null>(null);

export function useDashboard(): Dashboard {
  const d = useContext(DashboardContext);
  if (d === null) throw new Error('useDashboard outside <App>');
  return d;
}

/** Linked selection (issue #18): one layer, named by its module namespace (`layer1/0/conv1`),
 * shared by the graph, histograms, scalars and events panels. `selected` is what the graph
 * selected (it filters the other panels) or what a panel asked the graph to show (`focus`:
 * the graph reveals, selects and centres it); `hover` is the layer under the pointer. A
 * module-level store, so it outlives tab switches without a provider. */
export interface LayerSelection {
  run: string | null;
  /** Module namespace; a group's namespace selects everything inside it. */
  layer: string;
  /** Graph node ids to select (from /api/overlays badges), when known. */
  nodes?: string[];
  /** The diagnosis event that asked for it (the graph finds its nodes among its badges). */
  eventId?: number;
  /** Set when a panel asks the graph to reveal the layer (bumped per request). */
  focus?: number;
}

interface LinkState {
  selected: LayerSelection | null;
  hover: string | null;
}

type Listener = (s: LinkState) => void;

let linkState: LinkState = { selected: null, hover: null };
const linkListeners = new Set<Listener>();
let focusSeq = 0;

function setLink(next: Partial<LinkState>): void {
  linkState = { ...linkState, ...next };
  for (const l of linkListeners) l(linkState);
}

export const layerLink = {
  get: (): LinkState => linkState,
  select: (s: LayerSelection | null): void => setLink({ selected: s }),
  /** Select a layer and ask the graph to show it (the caller switches to the graph tab). */
  focus: (s: Omit<LayerSelection, 'focus'>): void => setLink({ selected: { ...s, focus: ++focusSeq } }),
  hover: (layer: string | null): void => {
    if (layer !== linkState.hover) setLink({ hover: layer });
  },
  subscribe: (l: Listener): (() => void) => {
    linkListeners.add(l);
    return () => linkListeners.delete(l);
  },
};

export function useLayerLink(): LinkState {
  const [s, set] = useState<LinkState>(linkState);
  useEffect(() => layerLink.subscribe(set), []);
  return s;
}

/** The module namespace a watch tag is about (`weights/a.0.weight`, `grad_norm/a.0.weight`,
 * `act/a.0/std` -> `a/0`), or null for other tags. */
export function layerOfTag(tag: string): string | null {
  const i = tag.indexOf('/');
  if (i < 0) return null;
  const kind = tag.slice(0, i);
  const rest = tag.slice(i + 1);
  if (kind === 'act') {
    const j = rest.lastIndexOf('/');
    return j < 0 ? null : namespaceOf(rest.slice(0, j));
  }
  if (['weights', 'grads', 'grad_norm', 'weight_norm', 'update_ratio'].includes(kind)) {
    if (rest === 'total') return null;
    const parts = namespaceOf(rest).split('/');
    return parts.slice(0, -1).join('/');
  }
  return null;
}

/** A module path (`a.0.conv#2`) as a namespace (`a/0/conv`). */
export function namespaceOf(path: string): string {
  return path
    .replace(/#\d+$/, '')
    .split(/[./]/)
    .filter((p) => p !== '')
    .join('/');
}

/** Does `layer` (a namespace) lie in the selected `scope` (itself or inside that group)? */
export function inLayer(layer: string | null, scope: string): boolean {
  return layer !== null && (layer === scope || layer.startsWith(`${scope}/`));
}

/** An event's layer (a module call or parameter name) inside the selected `scope`. */
export function eventInLayer(layer: string | null, scope: string): boolean {
  if (layer === null || layer === '') return false;
  const ns = namespaceOf(layer);
  const owner = ns.split('/').slice(0, -1).join('/');
  return inLayer(ns, scope) || (owner !== '' && owner === scope);
}
