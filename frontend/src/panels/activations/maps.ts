// Reading a decoded activations array (`wire/envelope.ts`, viewed in place: float16 values
// are converted one at a time, never copied) and painting one 2-D slice onto a canvas.

import { halfToFloat, type WireArray } from '../../wire/envelope';
import { lut, type CmapName } from './colormap';

/** The value at flat position `i` of `arr` (float16 bits decoded on read). */
export function valueAt(arr: WireArray, i: number): number {
  const v = arr.data[i];
  return arr.dtype === 'float16' ? halfToFloat(v) : v;
}

/** A 2-D slice of the array: `rows` × `cols` values starting at flat `offset`. */
export interface Slice {
  arr: WireArray;
  offset: number;
  rows: number;
  cols: number;
  /** true: the slice is stored transposed (value (r, c) at offset + c * rows + r). */
  transposed?: boolean;
}

export function sliceValue(s: Slice, r: number, c: number): number {
  return valueAt(s.arr, s.offset + (s.transposed ? c * s.rows + r : r * s.cols + c));
}

/** The slices to draw for an item: one per channel (C×H×W), or one heatmap otherwise. */
export function slicesOf(arr: WireArray, layout: string): Slice[] {
  const shape = arr.shape;
  if (layout === 'chw' && shape.length === 3) {
    const [c, h, w] = shape;
    return Array.from({ length: c }, (_, k) => ({ arr, offset: k * h * w, rows: h, cols: w }));
  }
  if (layout === 'tokens_units' && shape.length === 2) {
    // units down, tokens across (a units × time heatmap)
    return [{ arr, offset: 0, rows: shape[1], cols: shape[0], transposed: true }];
  }
  const n = shape.reduce((a, b) => a * b, 1);
  return [{ arr, offset: 0, rows: 1, cols: n }];
}

/** Paint `s` at one canvas pixel per value, values mapped from [lo, hi] through `cmap`;
 * non-finite values are drawn red. The canvas is scaled up by CSS with crisp pixels. */
export function paint(canvas: HTMLCanvasElement, s: Slice, lo: number, hi: number, cmap: CmapName): void {
  canvas.width = s.cols;
  canvas.height = s.rows;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const img = ctx.createImageData(s.cols, s.rows);
  const table = lut(cmap);
  const span = hi > lo ? hi - lo : 1;
  for (let r = 0; r < s.rows; r++) {
    for (let c = 0; c < s.cols; c++) {
      const v = sliceValue(s, r, c);
      const o = (r * s.cols + c) * 4;
      if (!Number.isFinite(v)) {
        img.data[o] = 255;
        img.data[o + 1] = 31;
        img.data[o + 2] = 31;
      } else {
        const k = Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) * 3;
        img.data[o] = table[k];
        img.data[o + 1] = table[k + 1];
        img.data[o + 2] = table[k + 2];
      }
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  canvas.dataset.painted = `${s.offset}:${s.rows}x${s.cols}`;
}

/** Whole-number upscale so the longer side is at least `minPx` CSS pixels (≥ 1). */
export function upscale(rows: number, cols: number, minPx: number): number {
  return Math.max(1, Math.ceil(minPx / Math.max(rows, cols, 1)));
}

/** Short number for labels. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return v.toPrecision(3).replace(/\.?0+$/, '');
}
