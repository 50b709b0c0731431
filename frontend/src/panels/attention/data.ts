// Reading attention arrays (`deepscope.views.kinds.attention`): a head's (queries × keys)
// matrix out of a (heads, queries, keys) envelope, windows of stored arrays fetched from
// the server (`/api/views/attention/array?index=&rows=&cols=`), and a zoomed block rebuilt
// from the stored top-k keys of each query when only the pooled view was kept.

import { ApiError, apiUrl } from '../../api';
import { ARRAY_CONTENT_TYPE, decodeArray, halfToFloat, type WireArray } from '../../wire/envelope';

/** A dense matrix of numbers (NaN: not known, e.g. below the stored top-k). */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
  /** The largest finite value (the colour scale's top). */
  max: number;
}

export function at(m: Matrix, r: number, c: number): number {
  return m.data[r * m.cols + c];
}

function finiteMax(data: Float32Array): number {
  let max = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v > max) max = v;
  }
  return max;
}

function reader(arr: WireArray): (i: number) => number {
  const d = arr.data;
  return arr.dtype === 'float16' ? (i) => halfToFloat(d[i]) : (i) => d[i];
}

/** Head `head` (an index into the stored heads) of a (heads, rows, cols) array, or the mean
 * over heads (`head` null); `mode` "max" takes the maximum over heads instead. */
export function headMatrix(arr: WireArray, head: number | null, mode: 'mean' | 'max' = 'mean'): Matrix {
  const [h, rows, cols] = arr.shape.length === 3 ? arr.shape : [1, arr.shape[0], arr.shape[1]];
  const n = rows * cols;
  const get = reader(arr);
  const data = new Float32Array(n);
  if (head !== null) {
    const o = head * n;
    for (let i = 0; i < n; i++) data[i] = get(o + i);
  } else {
    for (let k = 0; k < h; k++) {
      const o = k * n;
      for (let i = 0; i < n; i++) {
        const v = get(o + i);
        data[i] = mode === 'max' ? (k === 0 ? v : Math.max(data[i], v)) : data[i] + v / h;
      }
    }
  }
  return { rows, cols, data, max: finiteMax(data) };
}

/** Rows [r0, r1) × columns [c0, c1) of `m`. */
export function crop(m: Matrix, r0: number, r1: number, c0: number, c1: number): Matrix {
  const rows = r1 - r0;
  const cols = c1 - c0;
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) data.set(m.data.subarray((r0 + r) * m.cols + c0, (r0 + r) * m.cols + c1), r * cols);
  return { rows, cols, data, max: finiteMax(data) };
}

/** The cells [c0, c1) of queries given by their top-k (`values`, `keys`: rows × k of one
 * head): a key among a query's top-k gets its weight, every other cell is NaN (unknown:
 * at most the query's k-th value). */
export function fromTopK(values: WireArray, keys: WireArray, c0: number, c1: number): Matrix {
  const [rows, k] = values.shape.slice(-2);
  const cols = c1 - c0;
  const data = new Float32Array(rows * cols).fill(NaN);
  const get = reader(values);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const key = keys.data[r * k + j];
      if (key >= c0 && key < c1) data[r * cols + (key - c0)] = get(r * k + j);
    }
  }
  return { rows, cols, data, max: finiteMax(data) };
}

export interface Window {
  index?: number;
  /** Ask the server to block-average larger arrays down to this side. */
  maxSize?: number;
  rows?: [number, number];
  cols?: [number, number];
}

/** `arr[index][..., rows, cols]` computed here (for hosts that answer whole arrays). */
function sliceLocal(arr: WireArray, w: Window): WireArray {
  let shape = arr.shape;
  let data = arr.data;
  if (w.index !== undefined) {
    const n = shape.slice(1).reduce((a, b) => a * b, 1);
    data = data.subarray(w.index * n, (w.index + 1) * n);
    shape = shape.slice(1);
  }
  const [R, C] = shape.slice(-2);
  const [r0, r1] = w.rows ?? [0, R];
  const [c0, c1] = w.cols ?? [0, C];
  if (r0 === 0 && r1 === R && c0 === 0 && c1 === C) return { ...arr, shape, data };
  const lead = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const Ctor = data.constructor as { new (n: number): typeof data };
  const out = new Ctor(lead * (r1 - r0) * (c1 - c0));
  let o = 0;
  for (let l = 0; l < lead; l++) {
    for (let r = r0; r < r1; r++) {
      const base = (l * R + r) * C;
      out.set(data.subarray(base + c0, base + c1), o);
      o += c1 - c0;
    }
  }
  return { dtype: arr.dtype, shape: [...shape.slice(0, -2), r1 - r0, c1 - c0], data: out };
}

/** One array part of run `run` (by blob id), or a window of it (`index=`, `rows=`,
 * `cols=`: the server slices the stored array, so a zoomed block comes at full resolution
 * without the whole array); `shape` is the stored shape, to slice here when a host answers
 * the whole array (the offline snapshot). */
export async function fetchPart(
  run: string,
  id: number,
  w: Window = {},
  shape: number[] | null = null,
  signal?: AbortSignal,
): Promise<WireArray> {
  const url = apiUrl('views/attention/array', {
    run,
    id,
    index: w.index,
    maxSize: w.maxSize,
    rows: w.rows ? `${w.rows[0]}:${w.rows[1]}` : undefined,
    cols: w.cols ? `${w.cols[0]}:${w.cols[1]}` : undefined,
  });
  const resp = await fetch(url, { credentials: 'same-origin', signal });
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith(ARRAY_CONTENT_TYPE)) {
    throw new ApiError(resp.status, 'BadResponse', `expected an array from ${url} (${resp.status})`);
  }
  const arr = decodeArray(await resp.arrayBuffer());
  const windowed = w.index !== undefined || w.rows !== undefined || w.cols !== undefined;  // (maxSize: drawn as given)
  const whole = shape !== null && arr.shape.length === shape.length && arr.shape.every((n, i) => n === shape[i]);
  return windowed && whole ? sliceLocal(arr, w) : arr;
}

/** Short number for labels. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return v.toPrecision(4).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}
