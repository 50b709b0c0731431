// A weight matrix on canvas: one canvas pixel per (pooled) cell, scaled up by CSS with crisp
// pixels, a diverging colormap centred at 0 (symmetric about 0 at ±limit), a colorbar with
// numbers, the pooling note, and the value under the pointer (with the rows/cols of the
// original matrix that cell stands for).

import { useEffect, useRef, useState } from 'preact/hooks';
import { halfToFloat, type WireArray } from '../../wire/envelope';
import { divergingIndex, rdbu, rdbuGradient } from './colormap';
import { fmt } from './data';

/** CSS pixels of the heatmap's longer side, at least (small matrices are upscaled). */
const MIN_PX = 256;
const MAX_PX = 512;

function at(arr: WireArray, i: number): number {
  const v = arr.data[i];
  return arr.dtype === 'float16' ? halfToFloat(v) : v;
}

export interface HeatmapProps {
  arr: WireArray;
  /** The original matrix shape and the pooling factors (rows, cols). */
  matrixShape: number[];
  poolFactor: number[];
  limit: number;
  label: string;
  testid?: string;
}

export function Heatmap(p: HeatmapProps) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<string | null>(null);
  const rows = p.arr.shape.length === 2 ? p.arr.shape[0] : 1;
  const cols = p.arr.shape.length === 2 ? p.arr.shape[1] : p.arr.data.length;
  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    canvas.width = cols;
    canvas.height = rows;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    const img = ctx.createImageData(cols, rows);
    const lut = rdbu();
    for (let i = 0; i < rows * cols; i++) {
      const v = at(p.arr, i);
      const k = (Number.isNaN(v) ? 128 : divergingIndex(v, p.limit)) * 3;
      img.data[i * 4] = lut[k];
      img.data[i * 4 + 1] = lut[k + 1];
      img.data[i * 4 + 2] = lut[k + 2];
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.painted = `${rows}x${cols}`;
  }, [p.arr, p.limit]);
  const long = Math.max(rows, cols);
  const scale = long >= MIN_PX ? Math.min(1, MAX_PX / long) : Math.ceil(MIN_PX / long);
  // few rows (a bias strip, a 6 x 96 matrix): taller cells so it reads (as the PNG does)
  const sy = rows === 1 ? Math.max(scale, 16) : rows < 64 ? Math.max(scale, Math.ceil(64 / rows)) : scale;
  const [fy, fx] = [p.poolFactor[0] ?? 1, p.poolFactor[1] ?? 1];
  const [R, C] = [p.matrixShape[0] ?? rows, p.matrixShape[1] ?? cols];
  const pooled = fy > 1 || fx > 1;
  const onMove = (e: MouseEvent) => {
    const c = ref.current;
    if (!c) return;
    const box = c.getBoundingClientRect();
    const col = Math.floor(((e.clientX - box.left) / box.width) * cols);
    const row = Math.floor(((e.clientY - box.top) / box.height) * rows);
    if (row < 0 || col < 0 || row >= rows || col >= cols) return setHover(null);
    const r0 = row * fy, c0 = col * fx;
    const rs = fy > 1 ? `${r0}–${Math.min(r0 + fy, R) - 1}` : String(r0);
    const cs = fx > 1 ? `${c0}–${Math.min(c0 + fx, C) - 1}` : String(c0);
    setHover(`row ${rs}, col ${cs}: ${fmt(at(p.arr, row * cols + col))}`);
  };
  return (
    <figure class="wt-heat" data-testid={p.testid ?? 'weights-heatmap'}>
      <figcaption class="muted">
        {p.label} · {R}×{C}
        {pooled ? ` · pooled ${R}×${C} → ${rows}×${cols} (max |w| of ${fy}×${fx} blocks)` : ''}
      </figcaption>
      <canvas
        ref={ref}
        class="wt-canvas"
        data-testid="weights-heat-canvas"
        style={{ width: `${Math.max(1, Math.round(cols * scale))}px`, height: `${Math.max(1, Math.round(rows * sy))}px` }}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
      />
      <div class="wt-colorbar" data-testid="weights-colorbar">
        <span class="num">{fmt(-p.limit)}</span>
        <span class="wt-ramp" style={{ background: rdbuGradient() }} />
        <span class="num">{fmt(p.limit)}</span>
        <span class="muted">(0 = white)</span>
      </div>
      <div class="wt-hover num" data-testid="weights-hover">{hover ?? ' '}</div>
    </figure>
  );
}
