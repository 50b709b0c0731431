// The diverging colormap of weight heatmaps: ColorBrewer RdBu reversed (negative blue, 0
// white-ish #f7f7f7, positive red), the same 11 anchors as `deepscope.render.colormap`'s
// "rdbu", so the dashboard and `Weights.heatmap()` pictures agree.

const ANCHORS = '053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f';

let table: Uint8Array | null = null;

/** 256 × RGB bytes, index 0 = −limit, 255 = +limit (128 ≈ 0). */
export function rdbu(): Uint8Array {
  if (table !== null) return table;
  const stops = ANCHORS.split(' ').map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
  }
  table = out;
  return out;
}

/** The LUT index of `v` on a scale symmetric about 0 with half-width `limit`. */
export function divergingIndex(v: number, limit: number): number {
  const t = limit > 0 ? 0.5 + v / (2 * limit) : 0.5;
  return Math.max(0, Math.min(255, Math.round(t * 255)));
}

/** A CSS gradient of the colormap (for the colorbar). */
export function rdbuGradient(direction = 'to right'): string {
  const t = rdbu();
  const stops: string[] = [];
  for (let i = 0; i <= 10; i++) {
    const j = Math.round((i / 10) * 255) * 3;
    stops.push(`rgb(${t[j]},${t[j + 1]},${t[j + 2]}) ${i * 10}%`);
  }
  return `linear-gradient(${direction}, ${stops.join(', ')})`;
}
