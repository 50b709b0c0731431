// The attribution panel drawn from a payload alone: one run's `/api/views/attribution`
// answer plus `AttributionAssets`, which say where each blob's bytes come from. The dashboard
// passes assets that fetch blobs from the server by id (`AttributionPanel.tsx`); the notebook
// widget and the static report pass assets that read the data: URLs inlined in their payload
// (`entries/embedded.ts`). Nothing here fetches: the same component serves all three.

import { useEffect, useMemo, useState } from 'preact/hooks';
import type { AttributionItem, AttributionView } from '../../wire/types';
import { buildGrid, stepsOf, type Cell, type Column, type Grid } from './grid';

/** CSS pixels per image: small maps (8×8 digits) are drawn large with crisp pixels. */
export const IMAGE_PX = 112;

/** A token-score document (the JSON blob of a text attribution). */
export interface TokenDoc {
  tokens: string[];
  normalized: number[];
}

/** Where the panel gets the bytes of a blob, by the blob's id (ids come from the payload;
 * a URL is never taken from data). */
export interface AttributionAssets {
  /** The `src` of a PNG blob (an overlay or an input image), or null when there is none. */
  image(id: number): string | null;
  /** The token scores of a JSON item. */
  tokens(id: number, signal: AbortSignal): Promise<TokenDoc>;
}

export interface AttributionCardProps {
  /** One run's attribution items (`/api/views/attribution`). */
  view: AttributionView;
  assets: AttributionAssets;
  /** The run's colour (the swatch beside its name). */
  color: string;
  /** A load error to show above the grid. */
  error?: string | null;
}

/** One run's card: header (run, step picker, colorbar) and the method × input grid. */
export function AttributionCard({ view, assets, color, error = null }: AttributionCardProps) {
  const { run, items } = view;
  const [step, setStep] = useState<number | null>(null);
  const steps = useMemo(() => stepsOf(items), [items]);
  const shown = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const grid = useMemo(() => (shown === undefined ? null : buildGrid(items, shown)), [items, shown]);
  if (items.length === 0 && error === null) {
    return (
      <div class="empty" data-testid="attribution-empty" data-run={run}>
        {run}: no attributions logged (run.log_attribution).
      </div>
    );
  }
  return (
    <div class="card attribution-card" data-testid="attribution-card" data-run={run}>
      <div class="card-head">
        <span class="swatch" style={{ background: color }} />
        <span class="card-title">{run}</span>
        {steps.length > 1 && (
          <label class="control">
            step
            <select
              data-testid="attribution-step"
              value={String(shown)}
              onChange={(e) => setStep(Number((e.target as HTMLSelectElement).value))}
            >
              {steps.map((s) => (
                <option key={s} value={String(s)}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        )}
        {steps.length === 1 && <span class="muted num">step {steps[0]}</span>}
        {grid !== null && grid.colorbar.length > 0 && <Colorbar grid={grid} />}
      </div>
      {error !== null && <div class="error">{error}</div>}
      {grid !== null && <AttributionGrid assets={assets} grid={grid} />}
    </div>
  );
}

function Colorbar({ grid }: { grid: Grid }) {
  const gradient = `linear-gradient(to right, ${grid.colorbar.join(', ')})`;
  return (
    <span class="colorbar" data-testid="attribution-colorbar" title="each map is scaled to its own range">
      <span class="muted">low</span>
      <span class="colorbar-ramp" style={{ backgroundImage: gradient }} />
      <span class="muted">high</span>
      {grid.cmap !== null && <span class="muted">({grid.cmap}, per image)</span>}
    </span>
  );
}

function AttributionGrid({ assets, grid }: { assets: AttributionAssets; grid: Grid }) {
  const columns = `minmax(120px, max-content) repeat(${grid.columns.length}, ${IMAGE_PX}px)`;
  const hasInputs = grid.columns.some((c) => c.input !== null);
  return (
    <div class="attr-scroll">
      <div
        class="attr-grid"
        data-testid="attribution-grid"
        data-rows={grid.rows.length}
        data-columns={grid.columns.length}
        style={{ gridTemplateColumns: columns }}
      >
        <div class="attr-corner muted">input</div>
        {grid.columns.map((c) => (
          <InputCell key={c.index} assets={assets} column={c} show={hasInputs} />
        ))}
        {grid.rows.map((row) => [
          <div key={`h-${row.tag}`} class="attr-row-head" data-testid="attribution-row" data-tag={row.tag}>
            <span class="attr-method">{row.method}</span>
            {row.layer !== null && <span class="muted mono">layer {row.layer}</span>}
            {row.tag !== row.method && <span class="muted mono">{row.tag}</span>}
          </div>,
          ...grid.columns.map((c) => {
            const cell = row.cells.get(c.index);
            return cell === undefined ? (
              <div key={`${row.tag}-${c.index}`} class="attr-cell muted">—</div>
            ) : (
              <MapCell key={`${row.tag}-${c.index}`} assets={assets} cell={cell} method={row.method} />
            );
          }),
        ])}
      </div>
    </div>
  );
}

function InputCell({ assets, column, show }: { assets: AttributionAssets; column: Column; show: boolean }) {
  const wrong = column.label !== null && column.pred !== null && column.label !== column.pred;
  const inputId = column.input?.parts.input?.id;
  const src = show && inputId !== undefined ? assets.image(inputId) : null;
  return (
    <figure class="attr-cell" data-testid="attribution-input" data-index={column.index}>
      {src !== null ? (
        <img class="attr-img" src={src} alt={`input ${column.index}`} width={IMAGE_PX} />
      ) : (
        <div class="muted">#{column.index}</div>
      )}
      <figcaption class={wrong ? 'attr-caption error' : 'attr-caption'} data-testid="attribution-column-label">
        {column.label !== null && <span>label {column.label}</span>}
        {column.pred !== null && <span>pred {column.pred}</span>}
        {column.label === null && column.pred === null && <span class="muted">#{column.index}</span>}
      </figcaption>
    </figure>
  );
}

function MapCell({ assets, cell, method }: { assets: AttributionAssets; cell: Cell; method: string }) {
  const isTokens = cell.item.format === 'json';
  const src = isTokens ? null : assets.image(cell.item.id);
  return (
    <figure class="attr-cell" data-testid="attribution-cell" data-method={method}>
      {isTokens ? (
        <TokenScores assets={assets} item={cell.item} />
      ) : src !== null ? (
        <img
          class="attr-img"
          data-testid="attribution-overlay"
          src={src}
          alt={`${method} map of input ${String(cell.item.meta.input_index ?? '')}`}
          width={IMAGE_PX}
        />
      ) : (
        <div class="muted">—</div>
      )}
      <figcaption class="attr-caption muted">{cell.target !== null ? `target ${cell.target}` : ''}</figcaption>
    </figure>
  );
}

function TokenScores({ assets, item }: { assets: AttributionAssets; item: AttributionItem }) {
  const [doc, setDoc] = useState<TokenDoc | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    assets
      .tokens(item.id, ctl.signal)
      .then((d) => {
        if (!ctl.signal.aborted) setDoc(d);
      })
      .catch(() => setDoc(null));
    return () => ctl.abort();
  }, [assets, item.id]);
  if (doc === null || !Array.isArray(doc.tokens)) return <div class="muted">…</div>;
  return (
    <div class="attr-tokens">
      {doc.tokens.map((t, i) => (
        <span key={i} style={{ background: `rgba(239, 68, 68, ${Math.max(0, Math.min(1, Number(doc.normalized[i]) || 0))})` }}>
          {String(t)}{' '}
        </span>
      ))}
    </div>
  );
}
