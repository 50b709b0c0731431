// The matrix view of one layer and head: the whole (queries × keys) heatmap with token
// labels, or, for a layer kept block-pooled (long contexts), the pooled overview (block
// max or mean) where a click or a drag zooms into blocks: their rows of the stored top-k
// keys are fetched from the server (`rows=`, `index=`) and drawn at full resolution. A large
// whole matrix zooms the same way (cropped here).

import { useEffect, useMemo, useState } from 'preact/hooks';
import type { AttentionItem } from '../../wire/types';
import { crop, fetchPart, fmt, fromTopK, type Matrix } from './data';
import { Heatmap } from './Heatmap';

/** Cells a zoom shows at most per side (bigger selections are cut to it). */
export const ZOOM_MAX = 256;
/** Whole matrices larger than this on a side can be zoomed into. */
const ZOOMABLE = 64;

export interface MatrixViewProps {
  run: string;
  item: AttentionItem;
  tokens: string[];
  /** The whole matrix of the head shown, or the pooled overviews (max, mean). */
  full: Matrix | null;
  pooled: { max: Matrix; mean: Matrix } | null;
  /** The stored head index shown (null: every head, combined). */
  head: number | null;
  /** > 1: `full` was block-averaged by this factor (a snapshot of a long sequence). */
  sampled?: number;
}

interface Zoom {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

function labels(tokens: string[], start: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${tokens[start + i] ?? start + i}`);
}

function blockLabels(tokens: string[], start: number, n: number, block: number, total: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const a = start + i * block;
    return `${a}–${Math.min(total, a + block) - 1} ${tokens[a] ?? ''}`.trim();
  });
}

function combine(ms: Matrix[]): Matrix {
  if (ms.length === 1) return ms[0];
  const data = new Float32Array(ms[0].data.length).fill(NaN);
  for (const m of ms) {
    for (let i = 0; i < data.length; i++) {
      const v = m.data[i];
      if (!Number.isNaN(v) && !(v <= data[i])) data[i] = v;
    }
  }
  let max = 0;
  for (const v of data) if (v > max) max = v;
  return { rows: ms[0].rows, cols: ms[0].cols, data, max };
}

export function MatrixView({ run, item, tokens, full, pooled, head, sampled = 1 }: MatrixViewProps) {
  const { meta } = item;
  const [stat, setStat] = useState<'max' | 'mean'>('max');
  const [zoom, setZoom] = useState<Zoom | null>(null);
  const [zoomed, setZoomed] = useState<Matrix | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [, nq, nk] = meta.shape;
  const q0 = meta.queryStart;
  useEffect(() => setZoom(null), [item.id, head]);
  useEffect(() => {
    setZoomed(null);
    setError(null);
    if (zoom === null) return;
    if (full !== null) {
      setZoomed(crop(full, zoom.r0, zoom.r1, zoom.c0, zoom.c1));
      return;
    }
    const values = item.parts.top_values;
    const keys = item.parts.top_keys;
    if (values === null || keys === null) {
      setError('the top-k keys of this layer were not logged');
      return;
    }
    const ctl = new AbortController();
    const heads = head === null ? meta.heads.map((_, i) => i) : [head];
    const shape = [meta.heads.length, nq, meta.topK];
    const rows: [number, number] = [zoom.r0, zoom.r1];
    Promise.all(
      heads.map((index) =>
        Promise.all([
          fetchPart(run, values.id, { index, rows }, shape, ctl.signal),
          fetchPart(run, keys.id, { index, rows }, shape, ctl.signal),
        ]).then(([v, k]) => fromTopK(v, k, zoom.c0, zoom.c1)),
      ),
    )
      .then((ms) => setZoomed(combine(ms)))
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [zoom, full, item.id, head]);

  const overview = full ?? (pooled ? pooled[stat] : null);
  const block = meta.pooled ? meta.block : sampled;
  const blocks = meta.pooled || sampled > 1;
  const rowLabels = useMemo(
    () => (overview === null ? [] : blocks ? blockLabels(tokens, q0, overview.rows, block, q0 + nq) : labels(tokens, q0, overview.rows)),
    [overview, tokens],
  );
  const colLabels = useMemo(
    () => (overview === null ? [] : blocks ? blockLabels(tokens, 0, overview.cols, block, nk) : labels(tokens, 0, overview.cols)),
    [overview, tokens],
  );
  if (overview === null) return <div class="muted">loading…</div>;
  const pick = (r0: number, r1: number, c0: number, c1: number) => {
    const rr0 = r0 * block;
    const cc0 = c0 * block;
    setZoom({
      r0: rr0,
      r1: Math.min(nq, r1 * block, rr0 + ZOOM_MAX),
      c0: cc0,
      c1: Math.min(nk, c1 * block, cc0 + ZOOM_MAX),
    });
  };
  const zoomable = meta.pooled || (sampled === 1 && Math.max(overview.rows, overview.cols) > ZOOMABLE);
  const describe = (r: number, c: number, v: number) => {
    const span = (a: number, n: number) => `${a * block}–${Math.min(n, (a + 1) * block) - 1}`;
    if (sampled > 1) return `queries ${span(r, nq)} × keys ${span(c, nk)}: mean ${fmt(v)} (a ${block}×${block}-averaged copy)`;
    if (!meta.pooled) return `query ${q0 + r} “${tokens[q0 + r] ?? ''}” → key ${c} “${tokens[c] ?? ''}”: ${fmt(v)}`;
    const other = pooled ? pooled[stat === 'max' ? 'mean' : 'max'] : null;
    const o = other ? other.data[r * other.cols + c] : NaN;
    const [mx, mn] = stat === 'max' ? [v, o] : [o, v];
    return `queries ${q0 + r * block}–${Math.min(q0 + nq, q0 + (r + 1) * block) - 1} × keys ${c * block}–${Math.min(nk, (c + 1) * block) - 1}: max ${fmt(mx)} · mean ${fmt(mn)}`;
  };
  return (
    <div class="attn-matrix" data-testid="attn-matrix" data-pooled={meta.pooled ? 'true' : 'false'}>
      {meta.pooled && (
        <div class="card-head">
          <span class="muted">
            {nq}×{nk} tokens pooled in {block}×{block} blocks (top-{meta.topK} keys kept per query)
          </span>
          <label class="control">
            blocks
            <select value={stat} data-testid="attn-pool-stat" onChange={(e) => setStat((e.target as HTMLSelectElement).value as 'max' | 'mean')}>
              <option value="max">max</option>
              <option value="mean">mean</option>
            </select>
          </label>
        </div>
      )}
      <Heatmap m={overview} rowLabels={rowLabels} colLabels={colLabels} describe={describe} onPick={zoomable ? pick : undefined}
        testid={meta.pooled ? 'attn-overview' : 'attn-heatmap'} />
      {error !== null && <div class="error">{error}</div>}
      {zoom !== null && (
        <div class="attn-zoom" data-testid="attn-zoom" data-rows={`${zoom.r0}:${zoom.r1}`} data-cols={`${zoom.c0}:${zoom.c1}`}>
          <div class="card-head">
            <span class="card-title">
              queries {q0 + zoom.r0}–{q0 + zoom.r1 - 1} × keys {zoom.c0}–{zoom.c1 - 1}
            </span>
            <button type="button" class="link" onClick={() => setZoom(null)}>
              close
            </button>
          </div>
          {zoomed === null ? (
            <div class="muted">loading…</div>
          ) : (
            <Heatmap m={zoomed} testid="attn-zoomed" rowLabels={labels(tokens, q0 + zoom.r0, zoomed.rows)} colLabels={labels(tokens, zoom.c0, zoomed.cols)}
              describe={(r, c, v) => `query ${q0 + zoom.r0 + r} “${tokens[q0 + zoom.r0 + r] ?? ''}” → key ${zoom.c0 + c} “${tokens[zoom.c0 + c] ?? ''}”: ${Number.isNaN(v) ? 'not in the top-k' : fmt(v)}`} />
          )}
        </div>
      )}
    </div>
  );
}
