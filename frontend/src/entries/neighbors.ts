// Nearest neighbours without a server: what `/api/projector/neighbors` answers, computed in
// the page from an embedding's vectors inlined in the snapshot (an array envelope, float16
// or float32 as logged). The same rules as `deepscope.analysis.projection.nearest`: exact
// brute force in float64, cosine distance 1 - cos or euclidean, the point itself, rows with
// NaN/Inf and (cosine) zero rows never neighbours, nearest first, ties to the lower row.

import { decodeArray, halfToFloat } from '../wire/envelope';

export class NeighborError extends Error {}

export interface Matrix {
  n: number;
  dim: number;
  /** N x dim, row-major, float64. */
  data: Float64Array;
}

/** An envelope's bytes as a float64 matrix. */
export function matrixFromEnvelope(buffer: ArrayBuffer): Matrix {
  const arr = decodeArray(buffer);
  if (arr.shape.length !== 2 || (arr.dtype !== 'float32' && arr.dtype !== 'float16')) {
    throw new NeighborError(`embedding vectors must be float N x D, got ${arr.dtype} ${arr.shape.join('x')}`);
  }
  const [n, dim] = arr.shape;
  const data = new Float64Array(n * dim);
  if (arr.dtype === 'float16') {
    const bits = arr.data as Uint16Array;
    for (let i = 0; i < data.length; i++) data[i] = halfToFloat(bits[i]);
  } else {
    data.set(arr.data as Float32Array);
  }
  return { n, dim, data };
}

export function nearest(m: Matrix, index: number, k: number, metric: string): { index: number; distance: number }[] {
  const { n, dim, data } = m;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new NeighborError(`point ${index} does not exist: there are ${n} points`);
  if (metric !== 'cosine' && metric !== 'euclidean') throw new NeighborError(`metric is 'cosine' or 'euclidean', not '${metric}'`);
  const q = data.subarray(index * dim, (index + 1) * dim);
  let qq = 0;
  for (let j = 0; j < dim; j++) {
    if (!Number.isFinite(q[j])) throw new NeighborError(`point ${index} has NaN or infinite values: it has no neighbours`);
    qq += q[j] * q[j];
  }
  const qn = Math.sqrt(qq);
  if (metric === 'cosine' && qn === 0) throw new NeighborError(`point ${index} is all zeros: cosine distance is undefined`);
  const want = Math.max(0, Math.min(Math.floor(k), n - 1));
  const found: { index: number; distance: number }[] = [];
  for (let i = 0; i < n; i++) {
    if (i === index) continue;
    let d: number;
    if (metric === 'cosine') {
      let dot = 0;
      let sq = 0;
      for (let j = 0; j < dim; j++) {
        const v = data[i * dim + j];
        dot += v * q[j];
        sq += v * v;
      }
      const norm = Math.sqrt(sq);
      d = norm === 0 ? NaN : 1 - dot / (norm * qn);
    } else {
      let sq = 0;
      for (let j = 0; j < dim; j++) {
        const diff = data[i * dim + j] - q[j];
        sq += diff * diff;
      }
      d = Math.sqrt(sq);
    }
    if (Number.isFinite(d)) found.push({ index: i, distance: d });
  }
  found.sort((a, b) => a.distance - b.distance || a.index - b.index);
  return found.slice(0, want);
}
