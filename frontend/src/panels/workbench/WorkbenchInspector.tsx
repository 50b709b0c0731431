// The graph inspector's workbench (explore mode): tabs for the selected node that appear when
// they apply (Weights, Activations, Gradients, Attribution, Attention), each computed on
// demand for the input and class chosen in the input strip. Not explore mode: nothing.

import { useEffect, useState } from 'preact/hooks';
import type { LevelNode } from '../graph/types';
import type { GraphWeights } from '../weights/graphWeights';
import { InspectorWeights } from '../weights/InspectorWeights';
import type { WorkbenchInfo, WorkbenchTabs } from '../../wire/types';
import { fetchTabs, workbenchInfo } from './api';
import { AttentionTab, AttributionTab } from './AttrViews';
import { ActivationsTab, GradientsTab } from './MapViews';
import { useSelection } from './state';
import './workbench.css';

type TabName = 'weights' | 'activations' | 'gradients' | 'attribution' | 'attention';
const LABELS: Record<TabName, string> = {
  weights: 'Weights',
  activations: 'Activations',
  gradients: 'Gradients',
  attribution: 'Attribution',
  attention: 'Attention',
};

/** The live model's info, or null when this server has none (asked once). */
export function useWorkbenchInfo(): WorkbenchInfo | null {
  const [info, setInfo] = useState<WorkbenchInfo | null>(null);
  useEffect(() => {
    let alive = true;
    workbenchInfo()
      .then((i) => alive && setInfo(i))
      .catch(() => undefined);
    return () => {
      alive = false;
    };
  }, []);
  return info;
}

function available(t: WorkbenchTabs | null, node: LevelNode, weights: GraphWeights | undefined): TabName[] {
  const out: TabName[] = [];
  if (weights !== undefined && weights.mode !== 'none' && node.params > 0) out.push('weights');
  if (t === null) return out;
  if (t.activations) out.push('activations');
  if (t.gradients) out.push('gradients');
  if (t.gradcam || t.saliency) out.push('attribution');
  if (t.attention) out.push('attention');
  return out;
}

export function WorkbenchInspector({ node, weights }: { node: LevelNode; weights?: GraphWeights }) {
  // The answers are kept with the node they are for: right after a click, the previous
  // node's tabs are not shown for the new one while its own are asked for.
  const [got, setGot] = useState<{ id: string; tabs: WorkbenchTabs } | null>(null);
  const [failed, setFailed] = useState<{ id: string; error: string } | null>(null);
  const [active, setActive] = useState<TabName | null>(null);
  const sel = useSelection();
  useEffect(() => {
    const ctl = new AbortController();
    const id = node.id;
    fetchTabs(id, ctl.signal)
      .then((t) => setGot({ id, tabs: t }))
      .catch((e: unknown) => !ctl.signal.aborted && setFailed({ id, error: String(e) }));
    return () => ctl.abort();
  }, [node.id]);
  const tabs = got !== null && got.id === node.id ? got.tabs : null;
  const error = failed !== null && failed.id === node.id ? failed.error : null;
  const names = available(tabs, node, weights);
  // keep the open tab while it applies to the new node (so clicking along a stack compares)
  const shown: TabName | null = active !== null && names.includes(active) ? active : (names.find((n) => n !== 'weights') ?? names[0] ?? null);
  return (
    <div class="wb" data-testid="wb-inspector" data-node-id={node.id} data-tabs-for={tabs !== null ? node.id : ''}>
      <div class="wb-tabs" role="tablist">
        {names.map((n) => (
          <button key={n} type="button" role="tab" aria-selected={shown === n} class={shown === n ? 'tab active' : 'tab'}
            data-testid={`wb-tab-${n}`} onClick={() => setActive(n)}>
            {LABELS[n]}
          </button>
        ))}
      </div>
      {error !== null && <div class="muted">{error}</div>}
      {tabs !== null && names.length === 0 && <div class="muted">No live views for this node (a function call, not a module).</div>}
      {shown === 'weights' && weights !== undefined && <InspectorWeights node={node} weights={weights} />}
      {shown === 'activations' && <ActivationsTab node={node.id} sel={sel} />}
      {shown === 'gradients' && <GradientsTab node={node.id} sel={sel} />}
      {shown === 'attribution' && tabs !== null && <AttributionTab node={node.id} sel={sel} tabs={tabs} />}
      {shown === 'attention' && <AttentionTab node={node.id} sel={sel} />}
    </div>
  );
}
