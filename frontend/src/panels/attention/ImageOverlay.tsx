// Vision models: one query's attention over the image patches (the [CLS] token's by
// default), a patch-grid map upsampled smoothly over the input image.

import { useEffect, useRef, useState } from 'preact/hooks';
import { lut } from '../activations/colormap';
import { at, fmt, type Matrix } from './data';

export const IMAGE_PX = 360;

export function ImageOverlay(props: { m: Matrix; grid: number[]; tokens: string[]; queryStart: number; image: string }) {
  const { m, grid, tokens, queryStart, image } = props;
  const [gr, gc] = grid;
  const offset = m.cols - gr * gc;
  const [row, setRow] = useState(0);
  const [alpha, setAlpha] = useState(0.6);
  const ref = useRef<HTMLCanvasElement>(null);
  const r = Math.min(row, m.rows - 1);
  useEffect(() => {
    const canvas = ref.current;
    const ctx = canvas?.getContext('2d');
    if (!canvas || !ctx || offset < 0) return;
    canvas.width = gc;
    canvas.height = gr;
    const img = ctx.createImageData(gc, gr);
    let top = 0;
    for (let i = 0; i < gr * gc; i++) top = Math.max(top, at(m, r, offset + i));
    const table = lut('viridis');
    for (let i = 0; i < gr * gc; i++) {
      const k = Math.round((at(m, r, offset + i) / (top || 1)) * 255) * 3;
      img.data.set([table[k], table[k + 1], table[k + 2], 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.painted = `${r}`;
  }, [m, r, offset, gr, gc]);
  if (offset < 0) return <div class="error">the patch grid {gr}×{gc} does not fit {m.cols} keys</div>;
  return (
    <div class="attn-image" data-testid="attn-image">
      <div class="card-head">
        <label class="control">
          query
          <select value={String(r)} data-testid="attn-image-query" onChange={(e) => setRow(Number((e.target as HTMLSelectElement).value))}>
            {Array.from({ length: m.rows }, (_, i) => (
              <option key={i} value={String(i)}>
                {tokens[queryStart + i] ?? queryStart + i}
              </option>
            ))}
          </select>
        </label>
        <label class="control">
          opacity
          <input type="range" min="0" max="1" step="0.05" value={alpha} onInput={(e) => setAlpha(Number((e.target as HTMLInputElement).value))} />
        </label>
        <span class="muted num">
          {gr}×{gc} patches · max {fmt(Math.max(...Array.from({ length: gr * gc }, (_, i) => at(m, r, offset + i))))}
        </span>
      </div>
      <div class="attn-image-stack" style={{ width: `${IMAGE_PX}px`, height: `${(IMAGE_PX * gr) / gc}px` }}>
        <img src={image} alt="input" style={{ width: '100%', height: '100%' }} />
        <canvas ref={ref} class="attn-overlay" style={{ opacity: alpha }} data-testid="attn-overlay" />
      </div>
    </div>
  );
}
