// Pure data shaping for the scalar charts: x mapping, TensorBoard's debiased EMA, joining
// several runs onto one x axis for uPlot, and non-finite markers.
import type { ScalarPoint } from '../../api';

export type XMode = 'step' | 'wall' | 'relative';
export type NonfiniteKind = 'nan' | '+inf' | '-inf';

export interface RunSeries {
  run: string;
  points: ScalarPoint[];
  /** Wall time of the run's first point, the origin of the "relative" axis. */
  origin: number;
}

export interface Marker {
  x: number;
  kind: NonfiniteKind;
}

export interface Built {
  /** uPlot AlignedData: [xs, ...one or two series per run]. */
  data: (number | null)[][];
  markers: Marker[];
  counts: Record<NonfiniteKind, number>;
  /** Finite plus non-finite points drawn. */
  drawn: number;
}

export function xOf(p: ScalarPoint, mode: XMode, origin: number): number {
  if (mode === 'step') return p[0];
  if (mode === 'wall') return p[1];
  return p[1] - origin;
}

export function nonfiniteKind(v: number): NonfiniteKind | null {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return '+inf';
  if (v === -Infinity) return '-inf';
  return null;
}

/**
 * TensorBoard's smoothing: an exponential moving average debiased like Adam
 * (divide by 1 - w^n), skipping non-finite values, which stay gaps.
 */
export function ema(values: readonly number[], weight: number): (number | null)[] {
  const out: (number | null)[] = new Array(values.length);
  if (weight <= 0) {
    for (let i = 0; i < values.length; i++) out[i] = Number.isFinite(values[i]) ? values[i] : null;
    return out;
  }
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n += 1;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

export interface BuildOptions {
  xMode: XMode;
  smoothing: number;
  logY: boolean;
}

/**
 * Join runs onto a shared, sorted x axis. Per run: a raw series, plus a smoothed series
 * when smoothing > 0. Missing x positions are null (uPlot spans them per series).
 */
export function buildData(runs: readonly RunSeries[], opts: BuildOptions): Built {
  const counts: Record<NonfiniteKind, number> = { nan: 0, '+inf': 0, '-inf': 0 };
  const markers: Marker[] = [];
  let drawn = 0;
  const xsSet = new Set<number>();
  const perRun = runs.map((r) => {
    const xs = new Float64Array(r.points.length);
    const ys = new Array<number>(r.points.length);
    for (let i = 0; i < r.points.length; i++) {
      const p = r.points[i];
      const x = xOf(p, opts.xMode, r.origin);
      xs[i] = x;
      ys[i] = p[2];
      xsSet.add(x);
      const kind = nonfiniteKind(p[2]);
      if (kind !== null) {
        counts[kind] += 1;
        markers.push({ x, kind });
      }
    }
    drawn += r.points.length;
    return { xs, ys };
  });
  const xs = Float64Array.from(xsSet).sort();
  const index = new Map<number, number>();
  for (let i = 0; i < xs.length; i++) index.set(xs[i], i);
  const data: (number | null)[][] = [Array.from(xs)];
  for (const { xs: rx, ys } of perRun) {
    const clean = ys.map((v) => (Number.isFinite(v) && (!opts.logY || v > 0) ? v : NaN));
    const raw = new Array<number | null>(xs.length).fill(null);
    for (let i = 0; i < rx.length; i++) {
      const v = clean[i];
      raw[index.get(rx[i]) as number] = Number.isNaN(v) ? null : v;
    }
    data.push(raw);
    if (opts.smoothing > 0) {
      const sm = ema(clean, opts.smoothing);
      const smooth = new Array<number | null>(xs.length).fill(null);
      for (let i = 0; i < rx.length; i++) smooth[index.get(rx[i]) as number] = sm[i];
      data.push(smooth);
    }
  }
  return { data, markers, counts, drawn };
}

/** Steps of the points whose x lies in [x0, x1], over all runs: the re-query range. */
export function stepRange(
  runs: readonly RunSeries[],
  mode: XMode,
  x0: number,
  x1: number,
): [number, number] | null {
  if (mode === 'step') return [Math.ceil(x0), Math.floor(x1)];
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of runs) {
    for (const p of r.points) {
      const x = xOf(p, mode, r.origin);
      if (x >= x0 && x <= x1) {
        if (p[0] < lo) lo = p[0];
        if (p[0] > hi) hi = p[0];
      }
    }
  }
  return lo <= hi ? [lo, hi] : null;
}
