// Node fills: a stable hue per op (or module) type, or a sequential scale over one overlay.
import { NONFINITE_COLOR } from '../../colors';
import type { LevelNode } from './types';

export { NONFINITE_COLOR };

export const NO_VALUE = '#b8b8b8';
export const PLAIN_OP = '#f4f5f7';
export const PLAIN_GROUP = '#e3e8f0';

/** FNV-1a: the same op always gets the same hue, across sessions and graphs. */
export function hueOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 360;
}

export function opColor(key: string, group: boolean): string {
  const h = hueOf(key);
  return group ? `hsl(${h}, 30%, 88%)` : `hsl(${h}, 62%, 82%)`;
}

// Viridis-like stops, perceptually ordered from low (dark violet) to high (yellow).
const STOPS: [number, number, number][] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

export function sequential(t: number): string {
  const u = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(u));
  const f = u - i;
  const c = STOPS[i].map((v, k) => Math.round(v + (STOPS[i + 1][k] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

export const SEQUENTIAL_CSS = `linear-gradient(to right, ${STOPS.map((_, i) => sequential(i / (STOPS.length - 1))).join(', ')})`;

/** Dark text on light fills, light text on dark ones. */
export function textOn(fill: string): string {
  const m = /^rgb\((\d+), (\d+), (\d+)\)$/.exec(fill);
  if (m === null) return '#1d2330';
  const lum = 0.2126 * Number(m[1]) + 0.7152 * Number(m[2]) + 0.0722 * Number(m[3]);
  return lum < 120 ? '#ffffff' : '#1d2330';
}

/** `value`: a per-node number computed in the browser (e.g. a weight statistic of the node's
 * parameters), drawn on the same sequential scale as an overlay. */
export type ColorMode =
  | { kind: 'none' }
  | { kind: 'op' }
  | { kind: 'overlay'; name: string }
  | { kind: 'value'; name: string; value: (n: LevelNode) => number | null }
  /** A training overlay series at one step (`overlays.ts`): values by node id. */
  | { kind: 'series'; name: string; values: Map<string, number | null>; step: number | null };

export interface Colorer {
  fill(n: LevelNode): string;
  /** For the legend of an overlay: the value range (null when no finite value is shown). */
  range: [number, number] | null;
  /** How values map onto the ramp (default linear); log when they span >= 3 decades. */
  scale?: 'linear' | 'log';
}

/** Where `v` sits on the ramp, 0..1, for a range and scale (as the legend draws it). */
export function rampPosition(v: number, range: [number, number], scale: 'linear' | 'log'): number {
  const [lo, hi] = scale === 'log' ? [Math.log10(range[0]), Math.log10(range[1])] : range;
  const x = scale === 'log' ? Math.log10(v) : v;
  return hi === lo ? 1 : (x - lo) / (hi - lo);
}

/** The colour of finite `v` on the sequential ramp. */
export function rampColor(v: number, range: [number, number], scale: 'linear' | 'log'): string {
  return sequential(rampPosition(v, range, scale));
}

function seriesColorer(values: Map<string, number | null>, nodes: Iterable<LevelNode>): Colorer {
  let lo = Infinity;
  let hi = -Infinity;
  for (const n of nodes) {
    const v = values.get(n.id);
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range: [number, number] | null = lo <= hi ? [lo, hi] : null;
  const scale = range !== null && range[0] > 0 && range[1] / range[0] >= 1000 ? 'log' : 'linear';
  return {
    range,
    scale,
    fill: (n) => {
      const v = values.get(n.id);
      if (v === undefined || v === null) return NO_VALUE;
      if (!Number.isFinite(v)) return NONFINITE_COLOR;
      return range === null ? NO_VALUE : rampColor(v, range, scale);
    },
  };
}

export function overlayValue(n: LevelNode, name: string): number | null {
  const v = n.overlays[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function makeColorer(mode: ColorMode, nodes: Iterable<LevelNode>): Colorer {
  if (mode.kind === 'none') {
    return { fill: (n) => (n.kind === 'group' ? PLAIN_GROUP : PLAIN_OP), range: null };
  }
  if (mode.kind === 'op') {
    return { fill: (n) => opColor(n.kind === 'group' ? n.moduleType || 'group' : n.op, n.kind === 'group'), range: null };
  }
  if (mode.kind === 'value') return valueColorer(mode.value, nodes);
  if (mode.kind === 'series') return seriesColorer(mode.values, nodes);
  let lo = Infinity;
  let hi = -Infinity;
  for (const n of nodes) {
    const v = overlayValue(n, mode.name);
    if (v === null) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range: [number, number] | null = lo <= hi ? [lo, hi] : null;
  return {
    range,
    fill: (n) => {
      const raw = n.overlays[mode.name];
      if (typeof raw === 'number' && !Number.isFinite(raw)) return NONFINITE_COLOR;
      const v = overlayValue(n, mode.name);
      if (v === null || range === null) return NO_VALUE;
      return sequential(range[1] === range[0] ? 1 : (v - range[0]) / (range[1] - range[0]));
    },
  };
}

function valueColorer(value: (n: LevelNode) => number | null, nodes: Iterable<LevelNode>): Colorer {
  const values = new Map<string, number | null>();
  let lo = Infinity;
  let hi = -Infinity;
  for (const n of nodes) {
    const v = value(n);
    values.set(n.id, v);
    if (v === null || !Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range: [number, number] | null = lo <= hi ? [lo, hi] : null;
  return {
    range,
    fill: (n) => {
      const v = values.has(n.id) ? values.get(n.id)! : value(n);
      if (v === null || v === undefined) return NO_VALUE;
      if (!Number.isFinite(v)) return NONFINITE_COLOR;
      if (range === null) return NO_VALUE;
      return sequential(range[1] === range[0] ? 1 : (v - range[0]) / (range[1] - range[0]));
    },
  };
}
