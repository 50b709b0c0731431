// Canvas 2D renderers for TensorBoard's two histogram views.
import type { HistogramPoint } from '../../api';
import { withAlpha } from '../../colors';
import { niceTicks } from '../../format';
import { formatTicks } from '../scalars/ticks';
import { percentiles, valueRange } from './percentiles';

export type HistogramMode = 'offset' | 'distribution';

/** An x-axis label as drawn: its text and horizontal extent in CSS pixels. */
export interface DrawnLabel {
  text: string;
  left: number;
  right: number;
}

interface Frame {
  labels: DrawnLabel[];
  ctx: CanvasRenderingContext2D;
  left: number;
  top: number;
  width: number;
  height: number;
  fg: string;
  grid: string;
}

const MARGIN = { left: 56, right: 12, top: 10, bottom: 22 };
const MAX_RIDGES = 48;

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v === '' ? fallback : v;
}

/** Size the canvas for the device pixel ratio and return a drawing frame in CSS pixels. */
function prepare(canvas: HTMLCanvasElement, cssWidth: number, cssHeight: number): Frame | null {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssWidth * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const ctx = canvas.getContext('2d');
  if (ctx === null) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  ctx.font = '11px system-ui, sans-serif';
  return {
    labels: [],
    ctx,
    left: MARGIN.left,
    top: MARGIN.top,
    width: Math.max(10, cssWidth - MARGIN.left - MARGIN.right),
    height: Math.max(10, cssHeight - MARGIN.top - MARGIN.bottom),
    fg: cssVar('--fg-muted', '#6b7280'),
    grid: cssVar('--grid', 'rgba(128,128,128,0.15)'),
  };
}

/** Round ticks in [lo, hi] with short labels (`0.25`, `1e-4`, `2e9`: never `0.1234567`). */
function labelledTicks(lo: number, hi: number, max: number): [number, string][] {
  const { ticks, step } = niceTicks(lo, hi, max);
  const labels = formatTicks(ticks, step);
  return ticks.map((t, i) => [t, labels[i]]);
}

/** Draw `text` centred on x, shifted to stay inside [minX, maxX] (never clipped at an edge). */
function centredLabel(f: Frame, text: string, x: number, y: number, minX: number, maxX: number): void {
  const w = f.ctx.measureText(text).width;
  const cx = Math.min(Math.max(x, minX + w / 2), maxX - w / 2);
  f.ctx.textAlign = 'center';
  f.ctx.fillText(text, cx, y);
  f.labels.push({ text, left: cx - w / 2, right: cx + w / 2 });
}

function sample<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(items[Math.round((i * (items.length - 1)) / (max - 1))]);
  return out;
}

export function drawHistograms(
  canvas: HTMLCanvasElement,
  hs: readonly HistogramPoint[],
  mode: HistogramMode,
  color: string,
  cssWidth: number,
  cssHeight: number,
): DrawnLabel[] {
  const f = prepare(canvas, cssWidth, cssHeight);
  if (f === null) return [];
  const range = valueRange(hs);
  if (hs.length === 0 || range === null) {
    f.ctx.fillStyle = f.fg;
    f.ctx.fillText(hs.length === 0 ? 'no data' : 'no finite values', f.left + 4, f.top + 14);
    return [];
  }
  if (mode === 'offset') drawOffset(f, hs, range, color);
  else drawDistribution(f, hs, range, color);
  return f.labels;
}

function drawOffset(f: Frame, all: readonly HistogramPoint[], range: [number, number], color: string): void {
  const { ctx } = f;
  const hs = sample(all, MAX_RIDGES);
  const [lo, hi] = range;
  const ridge = f.height * 0.45;
  const n = hs.length;
  const xOf = (v: number) => f.left + ((v - lo) / (hi - lo)) * f.width;
  let maxCount = 0;
  for (const h of hs) for (const c of h.counts) if (c > maxCount) maxCount = c;
  if (maxCount <= 0) maxCount = 1;
  // x axis
  ctx.fillStyle = f.fg;
  const maxTicks = Math.max(4, Math.min(10, Math.floor(f.width / 55)));
  for (const [t, label] of labelledTicks(lo, hi, maxTicks)) {
    centredLabel(f, label, xOf(t), f.top + f.height + 16, 0, f.left + f.width + MARGIN.right);
  }
  // Oldest step first, furthest back (top); newest at the front (bottom), drawn last.
  for (let i = 0; i < n; i++) {
    const h = hs[i];
    const base = f.top + ridge + (n === 1 ? f.height - ridge : ((f.height - ridge) * i) / (n - 1));
    const shade = n === 1 ? 1 : 0.35 + (0.65 * i) / (n - 1);
    ctx.beginPath();
    ctx.moveTo(f.left, base);
    if (h.count > 0) {
      ctx.lineTo(xOf(h.edges[0]), base);
      for (let j = 0; j < h.counts.length; j++) {
        const x = xOf((h.edges[j] + h.edges[j + 1]) / 2);
        ctx.lineTo(x, base - (h.counts[j] / maxCount) * ridge);
      }
      ctx.lineTo(xOf(h.edges[h.edges.length - 1]), base);
    }
    ctx.lineTo(f.left + f.width, base);
    ctx.fillStyle = withAlpha(color, 0.18 * shade + 0.05);
    ctx.fill();
    ctx.strokeStyle = withAlpha(color, shade);
    ctx.lineWidth = 1;
    ctx.stroke();
    if (i === 0 || i === n - 1 || (n > 6 && i % Math.ceil(n / 5) === 0)) {
      ctx.fillStyle = f.fg;
      ctx.textAlign = 'right';
      ctx.fillText(String(h.step), f.left - 6, base + 3);
    }
  }
}

function drawDistribution(f: Frame, hs: readonly HistogramPoint[], range: [number, number], color: string): void {
  const { ctx } = f;
  const first = hs[0].step;
  const last = hs[hs.length - 1].step;
  const span = last === first ? 1 : last - first;
  const xOf = (s: number) => (last === first ? f.left + f.width / 2 : f.left + ((s - first) / span) * f.width);
  const pcs = hs.map((h) => percentiles(h));
  let [lo, hi] = range;
  for (const p of pcs) if (p !== null) {
    lo = Math.min(lo, p[0]);
    hi = Math.max(hi, p[8]);
  }
  if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const yOf = (v: number) => f.top + f.height - ((v - lo) / (hi - lo)) * f.height;
  // grid + axes
  ctx.strokeStyle = f.grid;
  ctx.fillStyle = f.fg;
  ctx.textAlign = 'right';
  for (const [t, label] of labelledTicks(lo, hi, Math.max(3, Math.floor(f.height / 32)))) {
    const y = yOf(t);
    ctx.beginPath();
    ctx.moveTo(f.left, y);
    ctx.lineTo(f.left + f.width, y);
    ctx.stroke();
    ctx.fillText(label, f.left - 6, y + 3);
  }
  const steps = last === first ? [first] : niceTicks(first, last, 5, true).ticks;
  for (const t of steps) {
    centredLabel(f, String(t), xOf(t), f.top + f.height + 16, 0, f.left + f.width + MARGIN.right);
  }
  // Contiguous runs of steps with finite data; all-non-finite steps leave a gap.
  const segments: number[][] = [];
  let cur: number[] = [];
  pcs.forEach((p, i) => {
    if (p === null) {
      if (cur.length > 0) segments.push(cur);
      cur = [];
    } else cur.push(i);
  });
  if (cur.length > 0) segments.push(cur);
  const bands: [number, number, number][] = [
    [0, 8, 0.14],
    [1, 7, 0.22],
    [2, 6, 0.32],
    [3, 5, 0.45],
  ];
  for (const seg of segments) {
    for (const [a, b, alpha] of bands) {
      ctx.beginPath();
      seg.forEach((i, k) => {
        const p = pcs[i] as number[];
        const x = xOf(hs[i].step);
        if (k === 0) ctx.moveTo(x, yOf(p[b]));
        else ctx.lineTo(x, yOf(p[b]));
      });
      for (let k = seg.length - 1; k >= 0; k--) {
        const i = seg[k];
        ctx.lineTo(xOf(hs[i].step), yOf((pcs[i] as number[])[a]));
      }
      ctx.closePath();
      ctx.fillStyle = withAlpha(color, alpha);
      ctx.fill();
      if (seg.length === 1) {
        const i = seg[0];
        const p = pcs[i] as number[];
        ctx.fillRect(xOf(hs[i].step) - 2, yOf(p[b]), 4, Math.max(1, yOf(p[a]) - yOf(p[b])));
      }
    }
    ctx.beginPath();
    seg.forEach((i, k) => {
      const x = xOf(hs[i].step);
      const y = yOf((pcs[i] as number[])[4]);
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
}
