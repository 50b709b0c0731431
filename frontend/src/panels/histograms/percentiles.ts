// Percentiles of a binned distribution (edges + counts), interpolated linearly inside bins,
// as TensorBoard's distribution view does (compressed histograms at fixed basis points).
import type { HistogramPoint } from '../../api';

export const BASIS_POINTS = [0, 7, 16, 31, 50, 69, 84, 93, 100] as const;

/** Percentile values for `ps` (0..100), or null when the step holds no finite value. */
export function percentiles(h: HistogramPoint, ps: readonly number[] = BASIS_POINTS): number[] | null {
  const { edges, counts } = h;
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0 || edges.length !== counts.length + 1) return null;
  const lo = h.min !== null && Number.isFinite(h.min) ? h.min : edges[0];
  const hi = h.max !== null && Number.isFinite(h.max) ? h.max : edges[edges.length - 1];
  const out: number[] = [];
  for (const p of ps) {
    if (p <= 0) {
      out.push(lo);
      continue;
    }
    if (p >= 100) {
      out.push(hi);
      continue;
    }
    const target = (p / 100) * total;
    let cum = 0;
    let value = hi;
    for (let j = 0; j < counts.length; j++) {
      const c = counts[j];
      if (c > 0 && cum + c >= target) {
        const frac = (target - cum) / c;
        value = edges[j] + frac * (edges[j + 1] - edges[j]);
        break;
      }
      cum += c;
    }
    out.push(Math.min(hi, Math.max(lo, value)));
  }
  return out;
}

export interface NonfiniteTotals {
  nan: number;
  posinf: number;
  neginf: number;
  /** Steps whose every value was non-finite (drawn empty). */
  emptySteps: number;
}

export function nonfiniteTotals(hs: readonly HistogramPoint[]): NonfiniteTotals {
  const t: NonfiniteTotals = { nan: 0, posinf: 0, neginf: 0, emptySteps: 0 };
  for (const h of hs) {
    t.nan += h.nNan;
    t.posinf += h.nPosinf;
    t.neginf += h.nNeginf;
    if (h.count === 0 && h.nNan + h.nPosinf + h.nNeginf > 0) t.emptySteps += 1;
  }
  return t;
}

/** Finite value range over every step that holds finite values; null when none does. */
export function valueRange(hs: readonly HistogramPoint[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of hs) {
    if (h.count <= 0 || h.edges.length < 2) continue;
    const a = h.edges[0];
    const b = h.edges[h.edges.length - 1];
    if (Number.isFinite(a) && a < lo) lo = a;
    if (Number.isFinite(b) && b > hi) hi = b;
  }
  if (!(lo <= hi)) return null;
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}
