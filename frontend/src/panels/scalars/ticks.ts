// Compact y-axis tick labels for the scalar charts, and the axis width that fits them.
// Labels use just enough digits to tell neighbouring ticks apart (from uPlot's tick increment),
// in exponent form (`1.2e-7`, `1.5e9`) for tiny or huge magnitudes, so an axis never needs
// more than a few characters; the axis size is then measured from the widest label.

/** uPlot's default axis font, set explicitly so the size function measures what is drawn. */
export const AXIS_FONT =
  '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
const TICK_SIZE = 10; // uPlot's default tick length
const AXIS_GAP = 5; // uPlot's default gap between tick and label
const MIN_SIZE = 32;
const MAX_SIZE = 160;
const MAX_DECIMALS = 15;
/** Mantissa digits at most in exponent labels (ticks never need more to differ). */
const MAX_EXP_DIGITS = 6;

/** Decimals that write `incr` (a tick step: 1, 2, 2.5 or 5 × 10^k) exactly. */
export function decimalsFor(incr: number): number {
  if (!Number.isFinite(incr) || incr <= 0) return 3;
  for (let d = 0; d < MAX_DECIMALS; d++) {
    const s = incr * 10 ** d;
    if (Math.abs(s - Math.round(s)) <= 1e-6 * s) return d;
  }
  return MAX_DECIMALS;
}

/** `1.50e-7` -> `1.5e-7`, `1e+9` -> `1e9`. */
function tidyExp(s: string): string {
  const [m, e] = s.split('e');
  const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
  return `${mant}e${e.replace('+', '')}`;
}

/** A single value with 3 significant digits (exponent form below 1e-3 or from 1e5 on). */
export function compact(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return tidyExp(v.toExponential(2));
  const s = v.toPrecision(3);
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/**
 * Labels for the ticks `splits` spaced by `incr`. Linear axes: fixed-point with the decimals
 * of `incr`; when the axis spans values below 1e-3 or from 1e5 on, exponent form if that is
 * narrower (`1e5` rather than `100000`, but `123460` rather than `1.2346e5`). Log axes
 * (`log` true: ticks are not evenly spaced) label each tick with `compact`.
 */
export function formatTicks(splits: readonly number[], incr: number, log = false): string[] {
  if (log) return splits.map(compact);
  const d = decimalsFor(incr);
  let mag = 0;
  for (const v of splits) if (Number.isFinite(v)) mag = Math.max(mag, Math.abs(v));
  const fixed = splits.map((v) => {
    if (!Number.isFinite(v)) return compact(v);
    const s = v.toFixed(Math.min(d, 20));
    return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
  });
  if (mag === 0 || (mag >= 1e-3 && mag < 1e5)) return fixed;
  // Mantissa digits that tell ticks `incr` apart: the decimal exponent of the value minus
  // that of the step, plus the step's own mantissa digits (2.5e24 needs one). For steps >= 1
  // `decimalsFor` is 0, so this is not `e + d` (which gave `5.000000000000001e25`).
  const incrExp = Number.isFinite(incr) && incr > 0 ? Math.floor(Math.log10(incr) + 1e-9) : 0;
  const incrDigits = Number.isFinite(incr) && incr > 0 ? decimalsFor(incr / 10 ** incrExp) : 0;
  const expo = splits.map((v) => {
    if (!Number.isFinite(v)) return compact(v);
    if (v === 0 || Math.abs(v) < incr * 1e-6) return '0';
    const e = Math.floor(Math.log10(Math.abs(v)));
    const dec = Math.max(0, Math.min(MAX_EXP_DIGITS, e - incrExp + incrDigits));
    return tidyExp(v.toExponential(dec));
  });
  // toFixed writes exponent form itself from 1e21 on: always take the exponent labels there.
  if (mag >= 1e21) return expo;
  const widest = (xs: string[]) => xs.reduce((m, s) => Math.max(m, s.length), 0);
  return widest(expo) < widest(fixed) ? expo : fixed;
}

let measureCtx: CanvasRenderingContext2D | null | undefined;

/** Width in CSS pixels of `text` in `font` (a canvas 2d measure; a per-glyph guess without one). */
export function textWidth(text: string, font: string = AXIS_FONT): number {
  if (measureCtx === undefined) measureCtx = document.createElement('canvas').getContext('2d');
  if (measureCtx === null) return text.length * 7.5;
  measureCtx.font = font;
  return measureCtx.measureText(text).width;
}

/** uPlot `axes[].size` for a left y axis: tick + gap + the widest label + a little room. */
export function yAxisSize(values: readonly string[] | null, font: string = AXIS_FONT): number {
  if (values === null || values.length === 0) return 50;
  let w = 0;
  for (const v of values) if (v) w = Math.max(w, textWidth(v, font));
  return Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.ceil(w + TICK_SIZE + AXIS_GAP + 4)));
}
