// First-layer conv filters (uint8 filters × kh × kw × 3, each stretched to its own range by
// the analysis) as a grid of crisp tiles, each at least `TILE_PX` CSS pixels.

import { useEffect, useRef } from 'preact/hooks';
import type { WireArray } from '../../wire/envelope';

export const TILE_PX = 56;

function Tile({ arr, index }: { arr: WireArray; index: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [, h, w] = arr.shape;
  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    const img = ctx.createImageData(w, h);
    const base = index * h * w * 3;
    for (let i = 0; i < h * w; i++) {
      for (let c = 0; c < 3; c++) img.data[i * 4 + c] = arr.data[base + i * 3 + c];
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.painted = String(index);
  }, [arr, index]);
  const scale = Math.max(1, Math.ceil(TILE_PX / Math.max(h, w)));
  return <canvas ref={ref} class="wt-canvas wt-tile" data-testid="weights-filter" style={{ width: `${w * scale}px`, height: `${h * scale}px` }} />;
}

export function Filters({ arr }: { arr: WireArray }) {
  const n = arr.shape[0] ?? 0;
  return (
    <div class="wt-filters" data-testid="weights-filters">
      <div class="muted">{n} filters (each scaled to its own min..max)</div>
      <div class="wt-filter-grid">
        {Array.from({ length: n }, (_, i) => (
          <figure key={i} class="wt-filter">
            <Tile arr={arr} index={i} />
            <figcaption class="muted">f{i}</figcaption>
          </figure>
        ))}
      </div>
    </div>
  );
}
