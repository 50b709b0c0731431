// The Weights section of the graph inspector: the selected node's parameters (a group: every
// tensor under it, at most a few shown) with their statistics, heatmap, filters and ESD.

import { useEffect, useMemo } from 'preact/hooks';
import { useKeyed } from '../../hooks';
import type { LevelNode } from '../graph/types';
import { fromItem, modelTensors, nodeTensors, type TensorData } from './data';
import type { GraphWeights } from './graphWeights';
import { TensorDetail } from './TensorDetail';
import './weights.css';

const MAX_SHOWN = 4;

export function InspectorWeights({ node, weights }: { node: LevelNode; weights: GraphWeights }) {
  const runNames = useMemo(
    () => (weights.mode === 'run' ? nodeTensors(node, weights.items.keys()) : []),
    [node.id, weights],
  );
  // what the tensors are for: a new node (or source) shows "reading…", not the last one's
  const key = useMemo(() => ({}), [node.id, weights.mode, weights.run, runNames]);
  const [tensors, setTensors] = useKeyed<TensorData[]>(key);
  const [error, setError] = useKeyed<string>(key);
  useEffect(() => {
    if (weights.mode === 'run' && weights.run !== null) {
      const run = weights.run;
      setTensors(key, runNames.flatMap((n) => { const i = weights.items.get(n); return i ? [fromItem(run, i)] : []; }));
      return;
    }
    if (weights.mode !== 'model' && weights.mode !== 'diff') return;
    const ctl = new AbortController();
    modelTensors({ node: node.id }, ctl.signal)
      .then((t) => setTensors(key, t))
      .catch((e: unknown) => !ctl.signal.aborted && setError(key, String(e)));
    return () => ctl.abort();
  }, [key]);
  if (weights.mode === 'none') return null;
  if (tensors !== null && tensors.length === 0 && error === null) return null;
  // the weight before the bias: the 2-D+ tensors first
  const shown = (tensors ?? []).slice().sort((a, b) => b.meta.shape.length - a.meta.shape.length).slice(0, MAX_SHOWN);
  return (
    <div class="wt-section" data-testid="inspector-weights">
      <h4>Weights</h4>
      {error !== null && <div class="error">{error}</div>}
      {tensors === null && error === null && <div class="muted">reading…</div>}
      {tensors !== null && tensors.length > MAX_SHOWN && <div class="muted">{`first ${MAX_SHOWN} of ${tensors.length} tensors`}</div>}
      {shown.map((t) => (
        <TensorDetail key={t.name} t={t} compact />
      ))}
    </div>
  );
}
