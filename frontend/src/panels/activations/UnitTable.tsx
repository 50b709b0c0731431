// The unit table of one layer (view kind `unit_stats`): per unit the mean, std, max and
// fraction of zeros over the dataset, sortable by any column, and the top-k inputs that
// excite it most with their receptive-field crops (drawn on canvas, crisp, from the float32
// crops array: grayscale for one channel, RGB for three; each crop scaled to its own range).

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fetchArray } from '../../views/registry';
import type { WireArray } from '../../wire/envelope';
import type { UnitStatsItem } from '../../wire/types';
import { fmt, upscale, valueAt } from './maps';

/** CSS pixels of a crop's longer side, at least. */
export const CROP_PX = 40;
const ROWS_SHOWN = 64;

interface UnitDoc {
  mean: (number | null)[];
  std: (number | null)[];
  max: (number | null)[];
  zeroFraction: (number | null)[];
  topIndices: number[][];
  topValues: (number | null)[][];
}

type Column = 'unit' | 'mean' | 'std' | 'max' | 'zeroFraction';
const COLUMNS: [Column, string][] = [
  ['unit', 'unit'],
  ['mean', 'mean'],
  ['std', 'std'],
  ['max', 'max'],
  ['zeroFraction', 'zeros'],
];

export function UnitTable({ run, item, blobUrl }: { run: string; item: UnitStatsItem; blobUrl: string }) {
  const [doc, setDoc] = useState<UnitDoc | null>(null);
  const [crops, setCrops] = useState<WireArray | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sort, setSort] = useState<{ col: Column; desc: boolean }>({ col: 'max', desc: true });
  useEffect(() => {
    const ctl = new AbortController();
    fetch(blobUrl, { credentials: 'same-origin', signal: ctl.signal })
      .then((r) => r.json() as Promise<UnitDoc>)
      .then(setDoc)
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    const part = item.parts.crops;
    if (part !== null) {
      fetchArray('unit_stats', run, part.id, undefined, ctl.signal)
        .then(setCrops)
        .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    }
    return () => ctl.abort();
  }, [run, blobUrl, item.parts.crops?.id]);
  const order = useMemo(() => {
    if (doc === null) return [];
    const units = doc.mean.map((_, u) => u);
    const key = (u: number) => (sort.col === 'unit' ? u : (doc[sort.col][u] ?? -Infinity));
    units.sort((a, b) => (sort.desc ? key(b) - key(a) : key(a) - key(b)) || a - b);
    return units.slice(0, ROWS_SHOWN);
  }, [doc, sort]);
  const { meta } = item;
  return (
    <div class="act-units" data-testid="unit-table" data-layer={meta.layer}>
      <div class="muted">
        unit statistics of {meta.layer} over {meta.items} inputs · top {meta.topK} per unit
        {meta.units > ROWS_SHOWN ? ` · first ${ROWS_SHOWN} of ${meta.units} units by the sort` : ''}
      </div>
      {error !== null && <div class="error">{error}</div>}
      {doc !== null && (
        <table class="act-unit-table">
          <thead>
            <tr>
              {COLUMNS.map(([col, label]) => (
                <th key={col}>
                  <button type="button" class="link" data-testid={`unit-sort-${col}`}
                    onClick={() => setSort({ col, desc: sort.col === col ? !sort.desc : col !== 'unit' })}>
                    {label}
                    {sort.col === col ? (sort.desc ? ' ▼' : ' ▲') : ''}
                  </button>
                </th>
              ))}
              <th>top inputs (index: value)</th>
            </tr>
          </thead>
          <tbody>
            {order.map((u) => (
              <tr key={u} data-testid="unit-row" data-unit={u}>
                <td class="num">{u}</td>
                <td class="num">{num(doc.mean[u])}</td>
                <td class="num">{num(doc.std[u])}</td>
                <td class="num">{num(doc.max[u])}</td>
                <td class="num">{num(doc.zeroFraction[u])}</td>
                <td>
                  <div class="act-crops">
                    {doc.topIndices[u].map((idx, j) => (
                      <figure key={j} class="act-crop" data-testid="unit-top" title={`input ${idx}: ${num(doc.topValues[u][j])}`}>
                        {crops !== null && <Crop arr={crops} unit={u} k={j} />}
                        <figcaption class="num">
                          #{idx}: {num(doc.topValues[u][j])}
                        </figcaption>
                      </figure>
                    ))}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function num(v: number | null): string {
  return v === null ? '—' : fmt(v);
}

/** One crop (units × k × C × H × W) as a canvas; NaN (outside the input) left transparent. */
function Crop({ arr, unit, k }: { arr: WireArray; unit: number; k: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [, kk, ch, h, w] = arr.shape;
  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    const base = (unit * kk + k) * ch * h * w;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < ch * h * w; i++) {
      const v = valueAt(arr, base + i);
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    const span = hi > lo ? hi - lo : 1;
    const img = ctx.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        let inside = true;
        for (let c = 0; c < 3; c++) {
          const v = valueAt(arr, base + (ch >= 3 ? c : 0) * h * w + y * w + x);
          inside = inside && Number.isFinite(v);
          img.data[o + c] = Number.isFinite(v) ? Math.round(((v - lo) / span) * 255) : 0;
        }
        img.data[o + 3] = inside ? 255 : 0; // outside the input: transparent (checkerboard)
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.painted = `${unit}:${k}`;
  }, [arr, unit, k]);
  const scale = upscale(h, w, CROP_PX);
  return <canvas ref={ref} class="act-canvas act-crop-canvas" style={{ width: `${w * scale}px`, height: `${h * scale}px` }} />;
}
