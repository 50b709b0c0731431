// The weights behind a graph: per tensor name its statistics (and diff row) for colour-by,
// and the logged items of a run for the inspector. From a run: its latest logged step of
// `weights` items. From the served model: `/api/model/weights/table` (cheap form first: the
// mode and the diff rows; every tensor's statistics only when a colouring needs them).

import { useEffect, useState } from 'preact/hooks';
import { fetchView } from '../../views/registry';
import type { WeightsDiffRow, WeightsItem, WeightsMeta } from '../../wire/types';
import { modelTable } from './data';

export interface GraphWeights {
  mode: 'run' | 'model' | 'diff' | 'none';
  run: string | null;
  metas: Map<string, WeightsMeta>;
  diff: Map<string, WeightsDiffRow>;
  items: Map<string, WeightsItem>;
  /** Statistics of every tensor are loaded (the served model computes them on demand). */
  complete: boolean;
}

const EMPTY: GraphWeights = { mode: 'none', run: null, metas: new Map(), diff: new Map(), items: new Map(), complete: true };

export function useGraphWeights(source: { run: string | null; model: boolean } | null, needAll: boolean): GraphWeights {
  const [state, setState] = useState<GraphWeights>(EMPTY);
  const run = source?.run ?? null;
  const model = source?.model ?? false;
  useEffect(() => {
    setState(EMPTY);
    if (source === null) return;
    const ctl = new AbortController();
    if (!model && run !== null) {
      fetchView('weights', run, {}, ctl.signal)
        .then((v) => {
          const last = Math.max(...v.items.map((i) => i.step));
          const items = new Map<string, WeightsItem>();
          for (const i of v.items) if (i.step === last) items.set(i.meta.entry, i);
          const metas = new Map([...items].map(([n, i]) => [n, i.meta]));
          setState({ mode: items.size ? 'run' : 'none', run, metas, diff: new Map(), items, complete: true });
        })
        .catch(() => undefined);
    } else if (model) {
      modelTable(false, ctl.signal)
        .then((t) =>
          setState({
            mode: t.mode,
            run: null,
            metas: new Map(t.tensors.map((m) => [m.entry, m])),
            diff: new Map((t.diff ?? []).map((d) => [d.name, d])),
            items: new Map(),
            complete: false,
          }),
        )
        .catch(() => undefined); // no weights behind this model: nothing to colour by
    }
    return () => ctl.abort();
  }, [run, model]);
  useEffect(() => {
    if (!needAll || state.complete || (state.mode !== 'model' && state.mode !== 'diff')) return;
    const ctl = new AbortController();
    modelTable(true, ctl.signal)
      .then((t) => setState((s) => ({ ...s, metas: new Map(t.tensors.map((m) => [m.entry, m])), complete: true })))
      .catch(() => undefined);
    return () => ctl.abort();
  }, [needAll, state.complete, state.mode]);
  return state;
}
