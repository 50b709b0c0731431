// The typed-array envelope of `deepscope.views.envelope` (application/x-deepscope-array):
// "DSAR", version u8, dtype code u8, ndim u8, 0, ndim x u32 shape (little-endian), zero
// padding to a multiple of 8, then the array bytes. The data is viewed in place: no copy.

export type WireDtype = 'float16' | 'float32' | 'uint8' | 'int32';

/** float16 has no typed array in ES2022: its raw bits come back as a Uint16Array. */
export type WireData = Float32Array | Uint8Array | Int32Array | Uint16Array;

export interface WireArray {
  dtype: WireDtype;
  shape: number[];
  data: WireData;
}

export const ARRAY_CONTENT_TYPE = 'application/x-deepscope-array';
const MAGIC = [0x44, 0x53, 0x41, 0x52]; // "DSAR"
const DTYPES: Record<number, [WireDtype, number]> = {
  1: ['float16', 2],
  2: ['float32', 4],
  3: ['uint8', 1],
  4: ['int32', 4],
};
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class EnvelopeError extends Error {}

/** The array in `buffer` (an envelope), as a typed-array view over the same bytes. */
export function decodeArray(buffer: ArrayBuffer): WireArray {
  const view = new DataView(buffer);
  if (buffer.byteLength < 8 || MAGIC.some((b, i) => view.getUint8(i) !== b)) {
    throw new EnvelopeError('not a deepscope array (bad magic)');
  }
  const version = view.getUint8(4);
  const entry = DTYPES[view.getUint8(5)];
  const ndim = view.getUint8(6);
  if (version !== 1 || view.getUint8(7) !== 0) throw new EnvelopeError(`unsupported envelope version ${version}`);
  if (!entry) throw new EnvelopeError(`unknown dtype code ${view.getUint8(5)}`);
  if (ndim > 8 || buffer.byteLength < 8 + 4 * ndim) throw new EnvelopeError('array envelope header is cut short');
  const [dtype, size] = entry;
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const n = view.getUint32(8 + 4 * i, true);
    shape.push(n);
    count *= n;
  }
  const offset = Math.ceil((8 + 4 * ndim) / 8) * 8;
  if (buffer.byteLength !== offset + count * size) {
    throw new EnvelopeError(`array envelope holds ${buffer.byteLength - offset} data bytes, header says ${count * size}`);
  }
  if (!LITTLE_ENDIAN && size > 1) throw new EnvelopeError('big-endian hosts are not supported');
  let data: WireData;
  if (dtype === 'float32') data = new Float32Array(buffer, offset, count);
  else if (dtype === 'int32') data = new Int32Array(buffer, offset, count);
  else if (dtype === 'float16') data = new Uint16Array(buffer, offset, count);
  else data = new Uint8Array(buffer, offset, count);
  return { dtype, shape, data };
}

/** IEEE half-precision bits to a number (for float16 arrays). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}
