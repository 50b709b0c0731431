// The model view: one small matrix per layer (rows) and head (columns), each drawn on a
// canvas from the server's block-averaged array (`maxSize`), a click opens it in the
// matrix view.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { WireArray } from '../../wire/envelope';
import type { AttentionItem } from '../../wire/types';
import { fetchPart, headMatrix } from './data';
import { paint } from './Heatmap';

export const TILE_PX = 64;
const TILE_SIZE = 48;

function partOf(item: AttentionItem) {
  return item.meta.pooled ? item.parts.pooled_max : item.parts.weights;
}

function Tile({ arr, index, onClick, layer, head }: { arr: WireArray; index: number; onClick: () => void; layer: string; head: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (ref.current) {
      const m = headMatrix(arr, index);
      paint(ref.current, m, m.max);
    }
  }, [arr, index]);
  return (
    <button type="button" class="attn-tile" onClick={onClick} title={`${layer} · head ${head}: open`}
      data-testid="attn-model-tile" data-layer={layer} data-head={head}>
      <canvas ref={ref} class="attn-canvas" style={{ width: `${TILE_PX}px`, height: `${TILE_PX}px` }} />
    </button>
  );
}

export function ModelView({ run, items, onOpen }: { run: string; items: AttentionItem[]; onOpen: (layer: string, head: number) => void }) {
  const [arrays, setArrays] = useState<Record<number, WireArray>>({});
  const [error, setError] = useState<string | null>(null);
  const ids = items.map((i) => i.id).join(',');
  useEffect(() => {
    // keyed by the items' ids: a re-render with equal items keeps the tiles drawn
    const ctl = new AbortController();
    setArrays({});
    for (const item of items) {
      const ref = partOf(item);
      if (ref === null) continue;
      fetchPart(run, ref.id, { maxSize: TILE_SIZE }, null, ctl.signal)
        .then((a) => setArrays((old) => ({ ...old, [item.id]: a })))
        .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    }
    return () => ctl.abort();
  }, [run, ids]);
  const width = Math.max(...items.map((i) => i.meta.heads.length), 1);
  return (
    <div class="attn-model" data-testid="attn-modelview">
      {error !== null && <div class="error">{error}</div>}
      <div class="muted">layers down, heads across{items.some((i) => i.meta.pooled) ? ' (pooled layers: block maxima)' : ''}; click a head to open it</div>
      <table class="attn-model-grid">
        <thead>
          <tr>
            <th />
            {Array.from({ length: width }, (_, h) => (
              <th key={h} class="muted">
                {items[0]?.meta.heads[h] ?? h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {items.map((item) => (
            <tr key={item.id}>
              <th class="attn-model-layer" title={item.meta.layer}>
                {item.meta.layer}
              </th>
              {item.meta.heads.map((head, k) => (
                <td key={head}>
                  {arrays[item.id] ? (
                    <Tile arr={arrays[item.id]} index={k} layer={item.meta.layer} head={head} onClick={() => onOpen(item.meta.layer, head)} />
                  ) : (
                    <div class="attn-tile-empty" style={{ width: `${TILE_PX}px`, height: `${TILE_PX}px` }} />
                  )}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
