// The feature-map grid of one layer output: a tile per channel (or one heatmap for
// sequences and unit vectors), a shared scale from the item's min/max, a colorbar, and a
// full-size view of one clicked tile with the value under the pointer.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { WireArray } from '../../wire/envelope';
import { gradient, type CmapName } from './colormap';
import { fmt, paint, sliceValue, slicesOf, upscale, type Slice } from './maps';

/** CSS pixels of a tile's longer side, at least (an 8×8 map is drawn 72 px wide). */
export const TILE_PX = 72;
/** CSS pixels of the longer side of the full-size view, at least. */
export const DETAIL_PX = 320;

export interface FeatureGridProps {
  arr: WireArray;
  layout: string;
  lo: number;
  hi: number;
  cmap: CmapName;
}

export function FeatureGrid({ arr, layout, lo, hi, cmap }: FeatureGridProps) {
  const slices = slicesOf(arr, layout);
  const [open, setOpen] = useState<number | null>(null);
  useEffect(() => setOpen(null), [arr]);
  const single = slices.length === 1;
  const label = layout === 'tokens_units' ? 'units × tokens' : layout === 'units' ? 'units' : 'channel';
  return (
    <div class="act-body">
      <Colorbar lo={lo} hi={hi} cmap={cmap} />
      <div class="act-grid" data-testid="act-grid" data-tiles={slices.length}>
        {slices.map((s, k) => (
          <Tile
            key={k}
            slice={s}
            k={k}
            label={single ? label : `${label} ${k}`}
            lo={lo}
            hi={hi}
            cmap={cmap}
            minPx={single ? Math.min(DETAIL_PX, Math.max(TILE_PX, 6 * Math.max(s.rows, s.cols))) : TILE_PX}
            active={open === k}
            onClick={() => setOpen(open === k ? null : k)}
          />
        ))}
      </div>
      {open !== null && open < slices.length && (
        <Detail slice={slices[open]} k={open} lo={lo} hi={hi} cmap={cmap} onClose={() => setOpen(null)} />
      )}
    </div>
  );
}

function Tile(props: {
  slice: Slice;
  k: number;
  label: string;
  lo: number;
  hi: number;
  cmap: CmapName;
  minPx: number;
  active: boolean;
  onClick: () => void;
}) {
  const { slice, k, label, lo, hi, cmap, minPx, active, onClick } = props;
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (ref.current) paint(ref.current, slice, lo, hi, cmap);
  }, [slice, lo, hi, cmap]);
  const scale = upscale(slice.rows, slice.cols, minPx);
  return (
    <button type="button" class={active ? 'act-tile active' : 'act-tile'} onClick={onClick}
      data-testid="act-tile" data-channel={k} title={`${label}: click for full size`}>
      <canvas ref={ref} class="act-canvas" style={{ width: `${slice.cols * scale}px`, height: `${slice.rows * scale}px` }} />
      <span class="act-label">{label}</span>
    </button>
  );
}

function Detail(props: { slice: Slice; k: number; lo: number; hi: number; cmap: CmapName; onClose: () => void }) {
  const { slice, k, lo, hi, cmap, onClose } = props;
  const ref = useRef<HTMLCanvasElement>(null);
  // the pointer's cell, not its value: a re-render with a new slice object (a poll, a
  // float16 decode) keeps the label, and the value is always read from the slice shown
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  useEffect(() => {
    if (ref.current) paint(ref.current, slice, lo, hi, cmap);
  }, [slice, lo, hi, cmap]);
  const shown = hover && hover.r < slice.rows && hover.c < slice.cols ? hover : null;
  const scale = upscale(slice.rows, slice.cols, DETAIL_PX);
  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as HTMLCanvasElement).getBoundingClientRect();
    const c = Math.floor(((e.clientX - rect.left) / rect.width) * slice.cols);
    const r = Math.floor(((e.clientY - rect.top) / rect.height) * slice.rows);
    if (r < 0 || c < 0 || r >= slice.rows || c >= slice.cols) setHover(null);
    else if (!hover || hover.r !== r || hover.c !== c) setHover({ r, c });
  };
  return (
    <div class="act-detail" data-testid="act-detail" data-channel={k}>
      <div class="card-head">
        <span class="card-title">channel {k}</span>
        <span class="muted num">
          {slice.rows}×{slice.cols}
        </span>
        <span class="num" data-testid="act-value">
          {shown ? `(${shown.r}, ${shown.c}) = ${fmt(sliceValue(slice, shown.r, shown.c))}` : 'hover for values'}
        </span>
        <button type="button" class="link" onClick={onClose}>
          close
        </button>
      </div>
      <canvas
        ref={ref}
        class="act-canvas"
        data-testid="act-detail-canvas"
        style={{ width: `${slice.cols * scale}px`, height: `${slice.rows * scale}px` }}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
      />
    </div>
  );
}

function Colorbar({ lo, hi, cmap }: { lo: number; hi: number; cmap: CmapName }) {
  return (
    <div class="act-colorbar" data-testid="act-colorbar">
      <span class="num">{fmt(lo)}</span>
      <span class="act-ramp" style={{ background: gradient(cmap) }} />
      <span class="num">{fmt(hi)}</span>
    </div>
  );
}
