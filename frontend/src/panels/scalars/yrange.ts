// The y range that ignores outliers (TensorBoard's default "ignore outliers in chart scaling").
// Per series: the 5th–95th percentile of its finite values, widened to the values that lie
// within 1.5 times that span of it (so the start of a loss curve stays in view while a few
// points at 1e25 do not). Across series: a run that diverges (its range starts within the
// others' and ends more than 100 times their scale beyond them) keeps only the part that
// shares their scale, so one diverging run does not flatten every other curve.

export const LOW_Q = 0.05;
export const HIGH_Q = 0.95;
/** Values this many 5–95% spans beyond that range are outliers. */
export const FENCE = 1.5;
/** A series reaching this many times the other series' scale beyond them is diverging. */
export const DIVERGED = 100;

function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
}

/** [lo, hi] of one series' values without its outliers, or null when it has no value. */
export function seriesRange(values: readonly (number | null)[], log: boolean): [number, number] | null {
  const all = new Float64Array(values.length);
  let k = 0;
  for (const v of values) {
    if (v === null || !Number.isFinite(v) || (log && v <= 0)) continue;
    all[k++] = log ? Math.log10(v) : v;
  }
  if (k === 0) return null;
  const sorted = all.subarray(0, k).sort();
  const q0 = quantile(sorted, LOW_Q);
  const q1 = quantile(sorted, HIGH_Q);
  const span = q1 - q0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of sorted) {
    if (v < q0 - FENCE * span || v > q1 + FENCE * span) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * [lo, hi] of the values to show, or null when there is nothing to decide (no finite value,
 * or all equal): the caller then uses the full data range. `log`: decided on log10 of the
 * positive values (where one diverging run cannot flatten the others) and returned in data
 * units.
 */
export function robustRange(series: readonly (readonly (number | null)[])[], log: boolean): [number, number] | null {
  const ranges = series.map((s) => seriesRange(s, log)).filter((r): r is [number, number] => r !== null);
  if (ranges.length === 0) return null;
  if (!log && ranges.length > 1) {
    const order = ranges.map((_, i) => i).sort((a, b) => ranges[b][1] - ranges[b][0] - (ranges[a][1] - ranges[a][0]));
    for (const i of order) {
      let oLo = Infinity;
      let oHi = -Infinity;
      ranges.forEach((r, j) => {
        if (j === i) return;
        oLo = Math.min(oLo, r[0]);
        oHi = Math.max(oHi, r[1]);
      });
      const scale = Math.max(oHi - oLo, Math.abs(oLo), Math.abs(oHi));
      if (!(scale > 0)) continue;
      const r = ranges[i];
      if (r[1] > oHi + DIVERGED * scale && r[0] <= oHi + scale) r[1] = Math.max(r[0], oHi);
      if (r[0] < oLo - DIVERGED * scale && r[1] >= oLo - scale) r[0] = Math.min(r[1], oLo);
    }
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of ranges) {
    lo = Math.min(lo, r[0]);
    hi = Math.max(hi, r[1]);
  }
  if (!(hi > lo)) return null;
  return log ? [10 ** lo, 10 ** hi] : [lo, hi];
}
