// The Activations and Gradients tabs: the node's output (or the gradient of the class score
// at it) for the selected input, drawn by the Activations panel's own FeatureGrid; and the
// unit table over every input, computed on request in the slow lane.

import { useEffect, useState } from 'preact/hooks';
import { FeatureGrid } from '../activations/FeatureGrid';
import { fmt } from '../activations/maps';
import type { WireArray } from '../../wire/envelope';
import type { WorkbenchView } from '../../wire/types';
import { fetchPartArray } from './api';
import type { Selection } from './state';
import { Pending, useView } from './useView';

function usePartArray(view: WorkbenchView | null, part: string): { arr: WireArray | null; error: string | null } {
  const [state, setState] = useState<{ key: string; arr: WireArray | null; error: string | null }>({ key: '', arr: null, error: null });
  const key = view === null ? '' : `${view.key}#${part}`;
  useEffect(() => {
    if (view === null) return;
    const ctl = new AbortController();
    fetchPartArray(view.key, part, ctl.signal)
      .then((arr) => setState({ key, arr, error: null }))
      .catch((e: unknown) => !ctl.signal.aborted && setState({ key, arr: null, error: String(e) }));
    return () => ctl.abort();
  }, [key]);
  // an array of the previous view is never drawn with the new view's meta
  return state.key === key ? state : { arr: null, error: null };
}

function num(meta: Record<string, unknown>, k: string): number {
  const v = meta[k];
  return typeof v === 'number' ? v : 0;
}

export function ActivationsTab({ node, sel }: { node: string; sel: Selection }) {
  const state = useView({ view: 'activations', node, input: sel.input });
  const { arr, error } = usePartArray(state.view, 'maps');
  const [units, setUnits] = useState(false);
  useEffect(() => setUnits(false), [node]);
  const v = state.view;
  return (
    <div class="wb-tab" data-testid="wb-activations" data-key={v?.key ?? ''}>
      {v === null ? (
        <Pending state={state} what="feature maps" />
      ) : (
        <>
          <div class="muted num wb-caption">
            {`${String(v.meta.layer)} · input ${sel.input} · ${(v.meta.shape as number[]).join('×')} · ${fmt(num(v.meta, 'min'))} … ${fmt(num(v.meta, 'max'))}`}
          </div>
          {error !== null && <div class="error">{error}</div>}
          {arr !== null && (
            <FeatureGrid arr={arr} layout={String(v.meta.layout)} lo={num(v.meta, 'min')} hi={num(v.meta, 'max')} cmap="viridis" />
          )}
        </>
      )}
      <h4>Unit table</h4>
      {units ? (
        <UnitTableView node={node} />
      ) : (
        <button type="button" data-testid="wb-units-open" onClick={() => setUnits(true)}>
          Compute over every input
        </button>
      )}
    </div>
  );
}

interface UnitsMeta {
  inputs: number;
  mean: (number | null)[];
  std: (number | null)[];
  max: (number | null)[];
  zeroFraction: (number | null)[];
}

const UNIT_ROWS = 64;

function UnitTableView({ node }: { node: string }) {
  const state = useView({ view: 'units', node, input: 0 });
  if (state.view === null) return <Pending state={state} what="unit table" />;
  const m = state.view.meta as unknown as UnitsMeta;
  const order = m.mean.map((_, i) => i).sort((a, b) => (m.max[b] ?? -Infinity) - (m.max[a] ?? -Infinity));
  const f = (x: number | null) => (x === null ? '—' : fmt(x));
  return (
    <div data-testid="wb-units">
      <div class="muted">{`${m.mean.length} units over ${m.inputs} inputs, by max`}</div>
      <table class="gx-table wb-units">
        <thead>
          <tr>
            <th>unit</th>
            <th>mean</th>
            <th>std</th>
            <th>max</th>
            <th>zeros</th>
          </tr>
        </thead>
        <tbody>
          {order.slice(0, UNIT_ROWS).map((u) => (
            <tr key={u}>
              <td>{u}</td>
              <td>{f(m.mean[u])}</td>
              <td>{f(m.std[u])}</td>
              <td>{f(m.max[u])}</td>
              <td>{f(m.zeroFraction[u])}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function GradientsTab({ node, sel }: { node: string; sel: Selection }) {
  const state = useView({ view: 'gradients', node, input: sel.input, target: sel.target });
  const { arr, error } = usePartArray(state.view, 'maps');
  const v = state.view;
  if (v === null) return <Pending state={state} what="gradients" />;
  const bound = num(v.meta, 'bound') || 1;
  return (
    <div class="wb-tab" data-testid="wb-gradients" data-key={v.key}>
      <div class="muted num wb-caption">
        {`∂ score(${String(v.meta.targetName)}) / ∂ ${String(v.meta.layer)} · input ${sel.input} · scale ±${fmt(bound)}`}
      </div>
      {error !== null && <div class="error">{error}</div>}
      {arr !== null && <FeatureGrid arr={arr} layout={String(v.meta.layout)} lo={-bound} hi={bound} cmap="viridis" />}
    </div>
  );
}
