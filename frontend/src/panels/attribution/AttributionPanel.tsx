import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, blobUrl, type AttributionItem } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { buildGrid, stepsOf, type Cell, type Column, type Grid } from './grid';

/** CSS pixels per image: small maps (8×8 digits) are drawn large with crisp pixels. */
export const IMAGE_PX = 112;

export function AttributionPanel() {
  const { selected } = useDashboard();
  return (
    <section class="panel" data-testid="panel-attribution">
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : (
        selected.map((run) => <AttributionRun key={run} run={run} />)
      )}
    </section>
  );
}

function AttributionRun({ run }: { run: string }) {
  const { colorOf } = useDashboard();
  const version = useDebounced(useRunsVersion([run]), 300);
  const [items, setItems] = useState<AttributionItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [step, setStep] = useState<number | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    api
      .attributions(run, undefined, ctl.signal)
      .then((r) => {
        setItems(r.items);
        setError(null);
      })
      .catch((e: unknown) => {
        if (ctl.signal.aborted) return;
        setItems([]);
        setError(String(e));
      });
    return () => ctl.abort();
  }, [run, version]);
  const steps = useMemo(() => stepsOf(items ?? []), [items]);
  const shown = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const grid = useMemo(() => (shown === undefined ? null : buildGrid(items ?? [], shown)), [items, shown]);
  if (items !== null && items.length === 0 && error === null) {
    return (
      <div class="empty" data-testid="attribution-empty" data-run={run}>
        {run}: no attributions logged (run.log_attribution).
      </div>
    );
  }
  return (
    <div class="card attribution-card" data-testid="attribution-card" data-run={run}>
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(run) }} />
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
      {grid !== null && <AttributionGrid run={run} grid={grid} />}
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

function AttributionGrid({ run, grid }: { run: string; grid: Grid }) {
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
          <InputCell key={c.index} run={run} column={c} show={hasInputs} />
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
              <MapCell key={`${row.tag}-${c.index}`} run={run} cell={cell} method={row.method} />
            );
          }),
        ])}
      </div>
    </div>
  );
}

function InputCell({ run, column, show }: { run: string; column: Column; show: boolean }) {
  const wrong = column.label !== null && column.pred !== null && column.label !== column.pred;
  const inputId = column.input?.inputId;
  return (
    <figure class="attr-cell" data-testid="attribution-input" data-index={column.index}>
      {show && inputId !== null && inputId !== undefined ? (
        <img class="attr-img" src={blobUrl(run, inputId)} alt={`input ${column.index}`} width={IMAGE_PX} />
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

function MapCell({ run, cell, method }: { run: string; cell: Cell; method: string }) {
  const isTokens = cell.item.meta.format === 'json';
  return (
    <figure class="attr-cell" data-testid="attribution-cell" data-method={method}>
      {isTokens ? (
        <TokenScores run={run} item={cell.item} />
      ) : (
        <img
          class="attr-img"
          data-testid="attribution-overlay"
          src={blobUrl(run, cell.item.id)}
          alt={`${method} map of input ${String(cell.item.meta.input_index ?? '')}`}
          width={IMAGE_PX}
        />
      )}
      <figcaption class="attr-caption muted">{cell.target !== null ? `target ${cell.target}` : ''}</figcaption>
    </figure>
  );
}

interface TokenDoc {
  tokens: string[];
  normalized: number[];
}

function TokenScores({ run, item }: { run: string; item: AttributionItem }) {
  const [doc, setDoc] = useState<TokenDoc | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    fetch(blobUrl(run, item.id), { signal: ctl.signal, credentials: 'same-origin' })
      .then((r) => r.json() as Promise<TokenDoc>)
      .then(setDoc)
      .catch(() => setDoc(null));
    return () => ctl.abort();
  }, [run, item.id]);
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
