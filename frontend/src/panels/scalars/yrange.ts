// The y range that ignores outliers (TensorBoard's default "ignore outliers in chart scaling"):
// the 5th–95th percentile of every finite value drawn, widened to take in the values that lie
// within 1.5 times that span of it, so the start of a loss curve stays in view while a run
// that diverges to 1e25 no longer flattens every other curve.

export const LOW_Q = 0.05;
export const HIGH_Q = 0.95;
/** Values this many 5–95% spans beyond that range are outliers. */
export const FENCE = 1.5;

function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
}

/**
 * [lo, hi] of the values to show, or null when there is nothing to decide (fewer than 3
 * finite values, or all equal): the caller then uses the full data range. `log`: the range
 * is decided on log10 of the positive values and returned in data units.
 */
export function robustRange(series: readonly (readonly (number | null)[])[], log: boolean): [number, number] | null {
  let n = 0;
  for (const s of series) n += s.length;
  const all = new Float64Array(n);
  let k = 0;
  for (const s of series) {
    for (const v of s) {
      if (v === null || !Number.isFinite(v) || (log && v <= 0)) continue;
      all[k++] = log ? Math.log10(v) : v;
    }
  }
  if (k < 3) return null;
  const sorted = all.subarray(0, k).sort();
  const q0 = quantile(sorted, LOW_Q);
  const q1 = quantile(sorted, HIGH_Q);
  const span = q1 - q0;
  if (!(span > 0)) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of sorted) {
    if (v < q0 - FENCE * span || v > q1 + FENCE * span) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return log ? [10 ** lo, 10 ** hi] : [lo, hi];
}
