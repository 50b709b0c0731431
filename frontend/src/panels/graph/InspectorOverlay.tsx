// The inspector's training-overlay section (#18): the selected node's value of the series the
// graph is coloured by, at the scrubber's step (the very value that colours the node), and a
// sparkline of that node's value over the logged steps (`/api/overlays/node`). A node with no
// value says why: no watched layer maps to it, naming the watched layers that map to no node
// of this graph (fused or renamed by a tracer or an exporter).
import { useEffect, useState } from 'preact/hooks';
import { getJson } from '../../api';
import { formatValue } from '../../format';
import type { OverlayNodeSeries } from '../../wire/types';
import './inspectorOverlay.css';

/** What the graph is coloured by, handed down by the graph panel. */
export interface InspectorOverlayState {
  run: string;
  tag: string | null;
  series: string;
  label: string;
  /** The logged step the shown values come from (latest at or before the scrubber's). */
  step: number | null;
  /** That step's values by node id (null while the first step loads). */
  values: Map<string, number | null> | null;
}

interface Point {
  step: number;
  value: number | null;
}

const W = 260;
const H = 44;
const MAX_NAMED = 6;

function Sparkline(p: { points: Point[]; step: number | null }) {
  const pts = p.points.filter((q): q is { step: number; value: number } => q.value !== null && Number.isFinite(q.value));
  if (pts.length < 2) return null;
  const s0 = pts[0].step;
  const s1 = pts[pts.length - 1].step;
  let lo = Infinity;
  let hi = -Infinity;
  for (const q of pts) {
    lo = Math.min(lo, q.value);
    hi = Math.max(hi, q.value);
  }
  const x = (s: number) => 3 + ((s - s0) / Math.max(1e-12, s1 - s0)) * (W - 6);
  const y = (v: number) => (hi === lo ? H / 2 : H - 4 - ((v - lo) / (hi - lo)) * (H - 8));
  const path = pts.map((q, i) => `${i === 0 ? 'M' : 'L'}${x(q.step).toFixed(1)},${y(q.value).toFixed(1)}`).join('');
  const here = p.step === null ? undefined : [...pts].reverse().find((q) => q.step <= p.step!);
  return (
    <figure class="gx-ov-spark">
      <svg data-testid="inspector-overlay-spark" data-points={pts.length} width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img">
        <title>{`${pts.length} steps, ${s0} to ${s1}`}</title>
        <path d={path} class="gx-ov-line" />
        {here !== undefined && <circle cx={x(here.step)} cy={y(here.value)} r={3} class="gx-ov-dot" />}
      </svg>
      <figcaption class="gx-muted">
        <span>{`step ${s0}`}</span>
        <span>{`${formatValue(lo)} … ${formatValue(hi)}`}</span>
        <span>{`step ${s1}`}</span>
      </figcaption>
    </figure>
  );
}

export function InspectorOverlay(p: { overlay: InspectorOverlayState; nodeId: string }) {
  const o = p.overlay;
  const [data, setData] = useState<{ key: string; body: OverlayNodeSeries | null; error: string | null } | null>(null);
  const key = `${o.run}\u0000${o.tag ?? ''}\u0000${o.series}\u0000${p.nodeId}`;
  useEffect(() => {
    const ctl = new AbortController();
    getJson<OverlayNodeSeries>('overlays/node', { run: o.run, tag: o.tag ?? undefined, series: o.series, node: p.nodeId }, ctl.signal)
      .then((body) => setData({ key, body, error: null }))
      .catch((e: unknown) => !ctl.signal.aborted && setData({ key, body: null, error: String(e) }));
    return () => ctl.abort();
  }, [key]);
  const body = data?.key === key ? data.body : null;
  const value = o.values?.get(p.nodeId);
  const has = value !== undefined && value !== null;
  const points = (body?.points ?? []) as Point[];
  const anyValue = points.some((q) => q.value !== null);
  let why: string | null = null;
  if (!has && body !== null) {
    if (anyValue) why = 'not logged for this node at this step';
    else {
      why = 'no watched layer maps to this node';
      const u = body.unmapped;
      if (u.length > 0) {
        const named = u.slice(0, MAX_NAMED).join(', ') + (u.length > MAX_NAMED ? `, … (${u.length - MAX_NAMED} more)` : '');
        why += `; ${u.length} watched layer${u.length === 1 ? ' maps' : 's map'} to no node of this graph (fused or renamed when it was traced or exported): ${named}`;
      }
    }
  }
  return (
    <section class="gx-ov" data-testid="inspector-overlay" data-series={o.series}>
      <h4>{`Training: ${o.label}`}</h4>
      <div class="gx-row">
        <dt>{o.step === null ? 'step' : `step ${o.step}`}</dt>
        <dd data-testid="inspector-overlay-value" data-value={has ? String(value) : ''} data-step={o.step ?? ''}>
          {has ? formatValue(value) : o.values === null ? '…' : '—'}
        </dd>
      </div>
      {why !== null && (
        <p class="gx-muted gx-ov-why" data-testid="inspector-overlay-why">
          {why}
        </p>
      )}
      {data?.key === key && data.error !== null && <p class="gx-error">{data.error}</p>}
      {body !== null && <Sparkline points={points} step={o.step} />}
    </section>
  );
}
