// `Decoded<T>`: a wire type after `decodeNonfinite` (api.ts): every {"nonfinite": ...}
// object has become the number it stands for (NaN, Infinity, -Infinity).

import type { NonFinite } from './types';

export type Decoded<T> = T extends NonFinite
  ? number
  : T extends object
    ? { [K in keyof T]: Decoded<T[K]> }
    : T;
