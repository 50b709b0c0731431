// Side pane: everything known about the selected node, as plain text.
import type { ComponentChildren } from 'preact';
import { formatValue } from '../../format';
import { InspectorAtlas } from '../atlas/InspectorAtlas';
import type { GraphWeights } from '../weights/graphWeights';
import { InspectorWeights } from '../weights/InspectorWeights';
import { useWorkbenchInfo, WorkbenchInspector } from '../workbench/WorkbenchInspector';
import { InspectorOverlay, type InspectorOverlayState } from './InspectorOverlay';
import { displayLabel, formatCount, formatShape, formatTensor } from './text';
import type { LevelNode, TensorMeta } from './types';

export interface InspectorProps {
  node: LevelNode | null;
  expanded: boolean;
  busy: boolean;
  onToggle: (id: string) => void;
  /** The weights behind the graph (a run's logged ones, or the served model's). */
  weights?: GraphWeights;
  /** The run whose graph is shown (null: a served model); links to its logged atlas. */
  run?: string | null;
  /** The training series the graph is coloured by, at the scrubber's step (null: none). */
  overlay?: InspectorOverlayState | null;
}

function Row(props: { name: string; children: ComponentChildren }) {
  return (
    <div class="gx-row">
      <dt>{props.name}</dt>
      <dd>{props.children}</dd>
    </div>
  );
}

function Tensors(props: { list: TensorMeta[]; testid: string }) {
  if (props.list.length === 0) return <span class="gx-muted">—</span>;
  return (
    <ul class="gx-list" data-testid={props.testid}>
      {props.list.map((t, i) => (
        <li key={i}>{formatTensor(t)}</li>
      ))}
    </ul>
  );
}

function attrText(v: unknown): string {
  if (typeof v === 'number') return formatValue(v);
  if (typeof v === 'string') return v;
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 199)}…` : s;
}

export function Inspector(p: InspectorProps) {
  const live = useWorkbenchInfo(); // explore mode: the live model's views replace the Weights section
  const n = p.node;
  if (n === null) {
    return (
      <aside class="gx-inspector" data-testid="graph-inspector">
        <p class="gx-muted">Click a node to inspect it; double-click a group to expand it.</p>
      </aside>
    );
  }
  const attrs = Object.entries(n.attrs);
  const overlays = Object.entries(n.overlays);
  return (
    <aside class="gx-inspector" data-testid="graph-inspector" data-node-id={n.id}>
      <h3 class="gx-title">{displayLabel(n)}</h3>
      {n.kind === 'group' && (
        <button type="button" data-testid="graph-expand" disabled={p.busy} onClick={() => p.onToggle(n.id)}>
          {p.expanded ? 'Collapse' : 'Expand'}
        </button>
      )}
      <dl>
        <Row name="kind">{n.kind}</Row>
        {n.kind === 'op' ? <Row name="op">{n.op}</Row> : <Row name="module">{n.moduleType || '—'}</Row>}
        <Row name="namespace">{n.namespace === '' ? '(top)' : n.namespace}</Row>
        <Row name="id">{n.id}</Row>
        {n.kind === 'group' && <Row name="ops">{String(n.opCount)}</Row>}
        {n.kind === 'group' && <Row name="children">{String(n.childCount)}</Row>}
        <Row name="params">
          {`${formatCount(n.params)} (${formatCount(n.trainableParams)} trainable)`}
        </Row>
        <Row name="MACs">{formatCount(n.macs)}</Row>
        <Row name="inputs">
          <Tensors list={n.inputs} testid="graph-inspector-inputs" />
        </Row>
        <Row name="outputs">
          <Tensors list={n.outputs} testid="graph-inspector-outputs" />
        </Row>
        <InspectorAtlas run={p.run ?? null} node={n} />
      </dl>
      {p.overlay != null && <InspectorOverlay overlay={p.overlay} nodeId={n.id} />}
      {n.paramRefs.length > 0 && (
        <>
          <h4>Parameters</h4>
          <table class="gx-table">
            <tbody>
              {n.paramRefs.map((r) => (
                <tr key={r.name}>
                  <td>{r.name}</td>
                  <td>{formatShape(r.shape)}</td>
                  <td>{r.dtype}</td>
                  <td>{r.trainable ? 'trainable' : 'frozen'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {live === null && p.weights !== undefined && <InspectorWeights node={n} weights={p.weights} />}
      {live !== null && <WorkbenchInspector node={n} weights={p.weights} />}
      {attrs.length > 0 && (
        <>
          <h4>Attributes</h4>
          <dl>
            {attrs.map(([k, v]) => (
              <Row key={k} name={k}>
                {attrText(v)}
              </Row>
            ))}
          </dl>
        </>
      )}
      {overlays.length > 0 && (
        <>
          <h4>Overlays</h4>
          <dl>
            {overlays.map(([k, v]) => (
              <Row key={k} name={k}>
                {v === null ? 'null' : formatValue(v)}
              </Row>
            ))}
          </dl>
        </>
      )}
    </aside>
  );
}
