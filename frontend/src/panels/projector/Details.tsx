// The projector's side parts: the colour legend, the hover card (label, metadata, sprite
// thumbnail), the progress bar, and the list of selected points (lasso, neighbours, search)
// with its CSV export.

import { useLayoutEffect, useRef } from 'preact/hooks';
import type { Column, Coords, Neighbor, SpriteInfo } from './api';
import { cellText, formatNumber, toCsv, type ColorEncoding } from './encoding';
import { ramp } from './palette';

const LIST_ROWS = 200;

export interface Selection {
  source: 'lasso' | 'neighbors' | 'search';
  indices: number[];
  /** neighbours: the clicked point and the distances of the others */
  anchor?: number;
  neighbors?: Neighbor[];
  query?: string;
}

export function Legend({ column, enc }: { column: string | null; enc: ColorEncoding }) {
  if (column === null) return null;
  return (
    <div class="proj-legend" data-testid="proj-legend">
      <div class="proj-side-title">{column}</div>
      {enc.range !== null && (
        <div class="proj-ramp-row">
          <span class="num">{formatNumber(enc.range[0])}</span>
          <span class="proj-ramp" style={{ background: `linear-gradient(to right, ${ramp(8).join(',')})` }} />
          <span class="num">{formatNumber(enc.range[1])}</span>
        </div>
      )}
      {enc.legend.map((e) => (
        <div key={e.label} class="proj-legend-row" data-testid="proj-legend-row" data-label={e.label} data-color={e.color}>
          <span class="swatch" style={{ background: e.color }} />
          <span class="proj-legend-label" title={e.label}>
            {e.label}
          </span>
          <span class="muted num">{e.count}</span>
        </div>
      ))}
      {enc.hidden > 0 && <div class="muted">+{enc.hidden} more categories</div>}
    </div>
  );
}

export function Thumb({ img, sprite, index }: { img: HTMLImageElement; sprite: SpriteInfo; index: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [w, h] = sprite.tile;
  const scale = Math.max(1, Math.floor(64 / Math.max(w, h)));
  // Drawn before the paint, so the card never shows the previous point's picture;
  // data-drawn says which point the canvas holds.
  useLayoutEffect(() => {
    const canvas = ref.current;
    const ctx = canvas?.getContext('2d');
    if (!canvas || !ctx || index >= sprite.count) return;
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, w * scale, h * scale);
    const [sx, sy] = [(index % sprite.cols) * w, Math.floor(index / sprite.cols) * h];
    ctx.drawImage(img, sx, sy, w, h, 0, 0, w * scale, h * scale);
    canvas.dataset.drawn = String(index);
  }, [img, index, sprite]);
  return <canvas ref={ref} class="proj-thumb" data-testid="proj-thumb" width={w * scale} height={h * scale} />;
}

export interface HoverProps {
  index: number;
  columns: Column[];
  label: Column | undefined;
  sprite: SpriteInfo | null;
  img: HTMLImageElement | null;
  x: number;
  y: number;
}

export function HoverCard({ index, columns, label, sprite, img, x, y }: HoverProps) {
  const title = label ? cellText(label, index) : '';
  return (
    <div class="proj-hover" data-testid="proj-hover" data-index={index} style={{ left: `${x + 14}px`, top: `${y + 14}px` }}>
      {img && sprite && <Thumb img={img} sprite={sprite} index={index} />}
      <div>
        <div class="proj-hover-label" data-testid="proj-hover-label">
          {title !== '' ? title : `#${index}`}
        </div>
        <table class="config">
          <tbody>
            <tr>
              <th>index</th>
              <td>{index}</td>
            </tr>
            {columns
              .filter((c) => c !== label)
              .slice(0, 8)
              .map((c) => (
                <tr key={c.name}>
                  <th>{c.name}</th>
                  <td>{cellText(c, index)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

export function Progress({ state, progress, partial, onCancel }: { state: string; progress: number; partial: boolean; onCancel: () => void }) {
  if (state !== 'queued' && state !== 'running') return null;
  const pct = Math.round(Math.max(0, Math.min(1, progress)) * 100);
  return (
    <div class="proj-progress" data-testid="proj-progress">
      <span class="muted">{state === 'queued' ? 'queued' : `computing ${pct}%`}</span>
      <progress max={100} value={pct} />
      {partial && <span class="muted">showing a partial layout</span>}
      <button type="button" data-testid="proj-cancel" onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export interface SelectionListProps {
  sel: Selection;
  columns: Column[];
  label: Column | undefined;
  coords: Coords | null;
  fileName: string;
  onClear: () => void;
  onPick: (index: number) => void;
}

export function SelectionList({ sel, columns, label, coords, fileName, onClear, onPick }: SelectionListProps) {
  const dist = new Map((sel.neighbors ?? []).map((n) => [n.index, n.distance]));
  const title =
    sel.source === 'lasso'
      ? `${sel.indices.length} selected`
      : sel.source === 'search'
        ? `${sel.indices.length} match "${sel.query ?? ''}"`
        : `${(sel.neighbors ?? []).length} nearest neighbours of #${sel.anchor ?? ''}`;
  const rows = sel.indices.slice(0, LIST_ROWS);
  return (
    <div class="proj-selection" data-testid="proj-selection" data-source={sel.source} data-count={sel.indices.length}>
      <div class="proj-side-title">
        <span data-testid="proj-selection-title">{title}</span>
        <button type="button" data-testid="proj-export"
          onClick={() => download(fileName, toCsv(sel.indices, columns, coords?.data ?? null, coords?.dims ?? 2))}>
          Export CSV
        </button>
        <button type="button" class="link" onClick={onClear}>
          clear
        </button>
      </div>
      <div class="proj-list">
        {rows.map((i) => (
          <button key={i} type="button" class={i === sel.anchor ? 'proj-row anchor' : 'proj-row'} data-testid="proj-row"
            data-index={i} onClick={() => onPick(i)}>
            <span class="muted num">#{i}</span> <span>{label ? cellText(label, i) : ''}</span>
            {dist.has(i) && <span class="muted num"> d={formatNumber(dist.get(i) ?? NaN)}</span>}
          </button>
        ))}
        {sel.indices.length > LIST_ROWS && <div class="muted">… {sel.indices.length - LIST_ROWS} more (all are exported)</div>}
      </div>
    </div>
  );
}
