// Perceptual colormaps for activation maps: 256-entry RGB lookup tables interpolated from
// the same 33 anchors of matplotlib's tables as `deepscope.render.colormap` (within 5/255).

const ANCHORS: Record<CmapName, string> = {
  viridis:
    '440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d 2f6b8e ' +
    '2c728e 297a8e 26828e 23898e 21918c 1f988b 1fa088 22a785 28ae80 32b67a 3fbc73 4ec36b ' +
    '5ec962 70cf57 84d44b 98d83e addc30 c2df23 d8e219 ece51b fde725',
  inferno:
    '000004 040312 0b0724 150b37 210c4a 2f0a5b 3d0965 4a0c6b 57106e 64156e 71196e 7d1e6d ' +
    '8a226a 972766 a32c61 b0315b bc3754 c73e4c d24644 db503b e45a31 eb6628 f1731d f68013 ' +
    'f98e09 fb9d07 fcac11 fbbc21 f9cb35 f5db4c f2ea69 f3f68a fcffa4',
};

export type CmapName = 'viridis' | 'inferno';
export const CMAPS: CmapName[] = ['viridis', 'inferno'];

const cache = new Map<CmapName, Uint8Array>();

/** 256 × RGB bytes of colormap `name`. */
export function lut(name: CmapName): Uint8Array {
  const hit = cache.get(name);
  if (hit) return hit;
  const stops = ANCHORS[name].split(' ').map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
  }
  cache.set(name, out);
  return out;
}

/** A CSS linear-gradient of colormap `name` (for the colorbar). */
export function gradient(name: CmapName, direction = 'to right'): string {
  const table = lut(name);
  const stops: string[] = [];
  for (let i = 0; i <= 8; i++) {
    const j = Math.round((i / 8) * 255) * 3;
    stops.push(`rgb(${table[j]},${table[j + 1]},${table[j + 2]}) ${(i / 8) * 100}%`);
  }
  return `linear-gradient(${direction}, ${stops.join(', ')})`;
}
