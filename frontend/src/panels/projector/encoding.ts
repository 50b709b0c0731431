// Column -> point encodings: a colour code per point (categories as they are, numbers in
// RAMP_STEPS bins along viridis, missing values grey) with its legend, a size in [0, 1]
// per point, and the text of a cell (hover, search, CSV export).

import type { Column } from './api';
import { CATEGORY_COLORS, DEFAULT_COLOR, MISSING_COLOR, ramp } from './palette';

export const RAMP_STEPS = 32;
const MAX_LEGEND = 40;

export interface LegendEntry {
  label: string;
  color: string;
  count: number;
}

export interface ColorEncoding {
  /** One integer code per point (data order); index into `colors`. */
  codes: Float32Array;
  colors: string[];
  legend: LegendEntry[];
  /** For a number column: [min, max] of the ramp. */
  range: [number, number] | null;
  /** Categories past MAX_LEGEND are counted here, not listed. */
  hidden: number;
}

export function uniformColor(n: number): ColorEncoding {
  return { codes: new Float32Array(n), colors: [DEFAULT_COLOR], legend: [], range: null, hidden: 0 };
}

export function colorBy(col: Column, n: number): ColorEncoding {
  const codes = new Float32Array(n);
  if (col.type === 'category') {
    const k = col.categories.length;
    const colors = col.categories.map((_, i) => CATEGORY_COLORS[i % CATEGORY_COLORS.length]);
    colors.push(MISSING_COLOR);
    const counts = new Array<number>(k + 1).fill(0);
    for (let i = 0; i < n; i++) {
      const c = col.codes[i];
      const code = c === undefined || c < 0 || c >= k ? k : c;
      codes[i] = code;
      counts[code]++;
    }
    const legend = col.categories.map((label, i) => ({ label, color: colors[i], count: counts[i] }));
    if (counts[k] > 0) legend.push({ label: '(missing)', color: MISSING_COLOR, count: counts[k] });
    return { codes, colors, legend: legend.slice(0, MAX_LEGEND), range: null, hidden: Math.max(0, legend.length - MAX_LEGEND) };
  }
  if (col.type === 'number') {
    const [lo, hi] = finiteRange(col.values);
    const colors = ramp(RAMP_STEPS);
    colors.push(MISSING_COLOR);
    let missing = 0;
    const span = hi > lo ? hi - lo : 1;
    for (let i = 0; i < n; i++) {
      const v = col.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) {
        codes[i] = RAMP_STEPS;
        missing++;
      } else {
        codes[i] = Math.min(RAMP_STEPS - 1, Math.floor(((v - lo) / span) * RAMP_STEPS));
      }
    }
    const legend = missing > 0 ? [{ label: '(missing)', color: MISSING_COLOR, count: missing }] : [];
    return { codes, colors, legend, range: [lo, hi], hidden: 0 };
  }
  return uniformColor(n);
}

/** Size in [0, 1] per point from a number column (missing: 0). */
export function sizeBy(col: Column | undefined, n: number): Float32Array | null {
  if (col === undefined || col.type !== 'number') return null;
  const [lo, hi] = finiteRange(col.values);
  const span = hi > lo ? hi - lo : 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = col.values[i];
    out[i] = v === null || v === undefined || !Number.isFinite(v) ? 0 : (v - lo) / span;
  }
  return out;
}

function finiteRange(values: (number | null)[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** The text of point `i` in `col` ('' when missing). */
export function cellText(col: Column, i: number): string {
  if (col.type === 'category') {
    const c = col.codes[i];
    return c === undefined || c < 0 ? '' : (col.categories[c] ?? '');
  }
  const v = col.values[i];
  if (v === null || v === undefined) return '';
  return typeof v === 'number' ? formatNumber(v) : v;
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, '');
}

/** The column that names a point: "label" when logged, else the first category/text one. */
export function labelColumn(columns: Column[]): Column | undefined {
  return columns.find((c) => c.name === 'label') ?? columns.find((c) => c.type !== 'number');
}

/** Indices of the points whose label/text cells contain `query` (case-insensitive). */
export function searchPoints(columns: Column[], n: number, query: string): number[] {
  const q = query.trim().toLowerCase();
  if (q === '') return [];
  const hits: number[] = [];
  const textual = columns.filter((c) => c.type !== 'number');
  for (const col of textual) {
    if (col.type === 'category') {
      const match = new Set(col.categories.flatMap((c, i) => (c.toLowerCase().includes(q) ? [i] : [])));
      if (match.size === 0) continue;
      for (let i = 0; i < n; i++) if (match.has(col.codes[i])) hits.push(i);
    } else if (col.type === 'text') {
      for (let i = 0; i < n; i++) if ((col.values[i] ?? '').toLowerCase().includes(q)) hits.push(i);
    }
  }
  return textual.length > 1 ? [...new Set(hits)].sort((a, b) => a - b) : hits;
}

/** CSV of the points `indices` (index, every column, coordinates), RFC 4180 quoting. */
export function toCsv(indices: number[], columns: Column[], coords: Float32Array | null, dims: number): string {
  const quote = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const axes = ['x', 'y', 'z'].slice(0, dims);
  const head = ['index', ...columns.map((c) => c.name), ...(coords ? axes : [])].map(quote).join(',');
  const rows = indices.map((i) => {
    const cells = [String(i), ...columns.map((c) => cellText(c, i))];
    if (coords) for (let d = 0; d < dims; d++) cells.push(String(coords[i * dims + d]));
    return cells.map(quote).join(',');
  });
  return `${[head, ...rows].join('\n')}\n`;
}
