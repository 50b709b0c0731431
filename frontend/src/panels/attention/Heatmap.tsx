// One attention matrix on a canvas (one ImageData pixel per cell, scaled up crisp by CSS:
// a 4,096-token pooled overview costs one putImageData), token labels on both axes
// (columns written vertically; long labels ellipsized with the full text on hover; only
// every n-th label when cells are small), the value under the pointer, and drag or click
// selection of cells (zooming into blocks of a pooled overview).

import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { lut } from '../activations/colormap';
import { at, fmt, type Matrix } from './data';

/** CSS pixels of the longer side of a large matrix, and the largest cell. */
export const HEAT_PX = 560;
export const MAX_CELL_PX = 40;
const LABEL_GAP_PX = 13;
const UNKNOWN: [number, number, number] = [150, 150, 150];

export interface HeatmapProps {
  m: Matrix;
  rowLabels: string[];
  colLabels: string[];
  /** The hover text of cell (r, c). */
  describe: (r: number, c: number, v: number) => string;
  /** Cells [r0, r1) × [c0, c1) picked by a click or a drag. */
  onPick?: (r0: number, r1: number, c0: number, c1: number) => void;
  /** The colour scale's top (default: the matrix maximum). */
  top?: number;
  testid?: string;
  px?: number;
}

export function cellPx(rows: number, cols: number, px = HEAT_PX): number {
  return Math.min(MAX_CELL_PX, px / Math.max(rows, cols, 1));
}

/** Paint `m` at one canvas pixel per cell, 0..`top` through viridis, NaN grey. */
export function paint(canvas: HTMLCanvasElement, m: Matrix, top: number): void {
  canvas.width = m.cols;
  canvas.height = m.rows;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const img = ctx.createImageData(m.cols, m.rows);
  const table = lut('viridis');
  const span = top > 0 ? top : 1;
  const out = img.data;
  for (let i = 0; i < m.data.length; i++) {
    const v = m.data[i];
    const o = i * 4;
    if (Number.isNaN(v)) {
      out[o] = UNKNOWN[0];
      out[o + 1] = UNKNOWN[1];
      out[o + 2] = UNKNOWN[2];
    } else {
      const k = Math.max(0, Math.min(255, Math.round((v / span) * 255))) * 3;
      out[o] = table[k];
      out[o + 1] = table[k + 1];
      out[o + 2] = table[k + 2];
    }
    out[o + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  canvas.dataset.painted = `${m.rows}x${m.cols}`;
  canvas.dataset.paintedAt = String(performance.now());
  requestAnimationFrame(() => {
    canvas.dataset.frameAt = String(performance.now()); // the first frame showing it
  });
}

function labelBox(labels: string[], step: number): number {
  let longest = 0;
  for (let i = 0; i < labels.length; i += step) longest = Math.max(longest, labels[i].length);
  return Math.min(120, 7 * Math.min(longest, 16) + 10);
}

function Labels({ labels, cell, axis, extent }: { labels: string[]; cell: number; axis: 'row' | 'col'; extent: number }) {
  const step = Math.max(1, Math.ceil(LABEL_GAP_PX / cell));
  const shown: number[] = [];
  for (let i = 0; i < labels.length; i += step) shown.push(i);
  // column labels that fit across their column are written level, else vertically
  const flat = axis === 'col' && shown.every((i) => 7 * labels[i].length + 4 <= cell * step);
  const size = flat ? 18 : labelBox(labels, step);
  const style = axis === 'row' ? { width: `${size}px`, height: `${extent}px` } : { height: `${size}px`, width: `${extent}px` };
  return (
    <div class={`attn-labels attn-${axis}-labels`} style={style} data-testid={`attn-${axis}-labels`}>
      {shown.map((i) => {
        const center = (i + 0.5) * cell;
        const width = cell * step;
        const pos =
          axis === 'row'
            ? { top: `${center - 7}px`, right: '4px', maxWidth: `${size - 6}px` }
            : flat
              ? { left: `${center - width / 2}px`, width: `${width}px`, top: '2px', textAlign: 'center' as const }
              : { left: `${center - 7}px`, top: '4px', maxHeight: `${size - 6}px` };
        return (
          <span key={i} class={flat ? 'attn-label attn-flat' : 'attn-label'} style={pos} title={labels[i]} data-index={i}>
            {labels[i]}
          </span>
        );
      })}
    </div>
  );
}

export function Heatmap({ m, rowLabels, colLabels, describe, onPick, top, testid = 'attn-heatmap', px }: HeatmapProps) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  const [drag, setDrag] = useState<{ r0: number; c0: number; r1: number; c1: number } | null>(null);
  const scaleTop = top ?? m.max;
  useLayoutEffect(() => {
    // before the browser's next frame (a plain effect would wait for a frame first)
    if (ref.current) paint(ref.current, m, scaleTop);
    setHover(null);
    setDrag(null);
  }, [m, scaleTop]);
  const cell = cellPx(m.rows, m.cols, px);
  const width = m.cols * cell;
  const height = m.rows * cell;
  const cellAt = (e: MouseEvent) => {
    const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const c = Math.floor(((e.clientX - rect.left) / rect.width) * m.cols);
    const r = Math.floor(((e.clientY - rect.top) / rect.height) * m.rows);
    return r < 0 || c < 0 || r >= m.rows || c >= m.cols ? null : { r, c };
  };
  const onMove = (e: MouseEvent) => {
    const p = cellAt(e);
    setHover(p);
    if (p && drag) setDrag({ ...drag, r1: p.r, c1: p.c });
  };
  const onDown = (e: MouseEvent) => {
    const p = cellAt(e);
    if (p && onPick) setDrag({ r0: p.r, c0: p.c, r1: p.r, c1: p.c });
    e.preventDefault();
  };
  const onUp = () => {
    if (drag && onPick) {
      onPick(Math.min(drag.r0, drag.r1), Math.max(drag.r0, drag.r1) + 1, Math.min(drag.c0, drag.c1), Math.max(drag.c0, drag.c1) + 1);
    }
    setDrag(null);
  };
  const sel = drag
    ? {
        left: `${Math.min(drag.c0, drag.c1) * cell}px`,
        top: `${Math.min(drag.r0, drag.r1) * cell}px`,
        width: `${(Math.abs(drag.c1 - drag.c0) + 1) * cell}px`,
        height: `${(Math.abs(drag.r1 - drag.r0) + 1) * cell}px`,
      }
    : null;
  return (
    <div class="attn-heat-wrap" data-testid={testid}>
      <div class="num attn-value" data-testid="attn-value">
        {hover ? describe(hover.r, hover.c, at(m, hover.r, hover.c)) : `rows: queries · columns: keys · hover for values${onPick ? ' · click or drag to zoom' : ''}`}
      </div>
      <div class="attn-heat" style={{ gridTemplateColumns: `auto ${width}px` }}>
        <Labels labels={rowLabels} cell={cell} axis="row" extent={height} />
        <div class="attn-canvas-box" style={{ width: `${width}px`, height: `${height}px` }}>
          <canvas
            ref={ref}
            class="attn-canvas"
            data-testid={`${testid}-canvas`}
            style={{ width: `${width}px`, height: `${height}px`, cursor: onPick ? 'zoom-in' : 'crosshair' }}
            onMouseMove={onMove}
            onMouseDown={onDown}
            onMouseUp={onUp}
            onMouseLeave={() => {
              setHover(null);
              setDrag(null);
            }}
          />
          {hover && (
            <div class="attn-cell" style={{ left: `${hover.c * cell}px`, top: `${hover.r * cell}px`, width: `${cell}px`, height: `${cell}px` }} />
          )}
          {sel && <div class="attn-select" style={sel} />}
        </div>
        <div />
        <Labels labels={colLabels} cell={cell} axis="col" extent={width} />
      </div>
      <Colorbar top={scaleTop} unknown={m.data.some(Number.isNaN)} />
    </div>
  );
}

function Colorbar({ top, unknown }: { top: number; unknown: boolean }) {
  const table = lut('viridis');
  const stops = Array.from({ length: 9 }, (_, i) => {
    const j = Math.round((i / 8) * 255) * 3;
    return `rgb(${table[j]},${table[j + 1]},${table[j + 2]}) ${(i / 8) * 100}%`;
  });
  return (
    <div class="attn-colorbar">
      <span class="num">0</span>
      <span class="attn-ramp" style={{ background: `linear-gradient(to right, ${stops.join(', ')})` }} />
      <span class="num">{fmt(top)}</span>
      {unknown && (
        <span class="muted">
          <span class="attn-unknown" /> not among the stored top-k keys (≤ the query's k-th weight)
        </span>
      )}
    </div>
  );
}
