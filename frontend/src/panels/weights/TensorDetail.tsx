// Everything about one tensor: its statistics, its heatmap (or Δ heatmap for a diff), its
// filters (first-layer convs) and its ESD. Used by the Weights tab and the graph inspector.

import { useEffect, useMemo } from 'preact/hooks';
import { useKeyed } from '../../hooks';
import { halfToFloat, type WireArray } from '../../wire/envelope';
import type { EsdSummary } from '../../wire/types';
import { fmt, type Part, type TensorData } from './data';
import { Esd } from './Esd';
import { Filters } from './Filters';
import { Heatmap } from './Heatmap';
import './weights.css';

function useArray(t: TensorData, part: Part, want: boolean): { arr: WireArray | null; error: string | null } {
  const key = useMemo(() => ({}), [t, part, want]); // a new tensor never shows the last one's picture
  const [arr, setArr] = useKeyed<WireArray>(key);
  const [error, setError] = useKeyed<string>(key);
  useEffect(() => {
    if (!want) return;
    const ctl = new AbortController();
    t.array(part, ctl.signal)
      .then((a) => setArr(key, a))
      .catch((e: unknown) => !ctl.signal.aborted && setError(key, String(e)));
    return () => ctl.abort();
  }, [key]);
  return { arr, error };
}

function limitOf(arr: WireArray | null): number {
  if (arr === null) return 0;
  let m = 0;
  for (let i = 0; i < arr.data.length; i++) {
    const v = Math.abs(arr.dtype === 'float16' ? halfToFloat(arr.data[i]) : arr.data[i]);
    if (Number.isFinite(v) && v > m) m = v;
  }
  return m;
}

export function StatsList({ t }: { t: TensorData }) {
  const m = t.meta;
  const d = t.diff;
  return (
    <dl class="wt-stats" data-testid="weights-stats" data-tensor={t.name}>
      <dt>shape</dt>
      <dd>
        {m.shape.join('×')} {m.dtype}
      </dd>
      <dt>count</dt>
      <dd class="num">{m.count}</dd>
      <dt>mean ± std</dt>
      <dd class="num">
        {fmt(m.mean)} ± {fmt(m.std)}
      </dd>
      <dt>min / max</dt>
      <dd class="num">
        {fmt(m.min)} / {fmt(m.max)}
      </dd>
      <dt>‖W‖₂ (L2)</dt>
      <dd class="num" data-testid="weights-stat-l2">
        {fmt(m.l2)}
      </dd>
      <dt>zeros</dt>
      <dd class="num">{m.zeros === null ? '—' : `${(m.zeros * 100).toFixed(1)}%`}</dd>
      {(m.nan > 0 || m.inf > 0) && (
        <>
          <dt>NaN / Inf</dt>
          <dd class="num error">
            {m.nan} / {m.inf}
          </dd>
        </>
      )}
      {m.alpha !== null && (
        <>
          <dt>alpha</dt>
          <dd class="num">{fmt(m.alpha)}</dd>
        </>
      )}
      {d !== null && (
        <>
          <dt>diff</dt>
          <dd class="num" data-testid="weights-diff-row">
            {d.status}
            {d.normDelta !== null ? ` · ‖Δ‖ ${fmt(d.normDelta)} · ‖Δ‖/‖a‖ ${fmt(d.relDelta)} · cos ${fmt(d.cosine)} · max|Δ| ${fmt(d.maxAbs)}` : ''}
          </dd>
        </>
      )}
    </dl>
  );
}

export function TensorDetail({ t, compact = false }: { t: TensorData; compact?: boolean }) {
  const heat = useArray(t, 'heatmap', t.parts.includes('heatmap'));
  const filters = useArray(t, 'filters', t.parts.includes('filters'));
  const delta = useArray(t, 'delta', t.parts.includes('delta'));
  const [esd, setEsd] = useKeyed<EsdSummary>(t);
  useEffect(() => {
    let alive = true;
    t.esd()
      .then((e) => alive && setEsd(t, e))
      .catch(() => alive && setEsd(t, null));
    return () => {
      alive = false;
    };
  }, [t]);
  const m = t.meta;
  return (
    <div class={compact ? 'wt-detail wt-compact' : 'wt-detail'} data-testid="weights-detail" data-tensor={t.name}>
      <h4 class="wt-name">{t.name}</h4>
      <StatsList t={t} />
      {[heat.error, filters.error, delta.error].filter((e) => e !== null).map((e) => (
        <div class="error">{e}</div>
      ))}
      {heat.arr !== null && (
        <Heatmap arr={heat.arr} matrixShape={m.matrixShape} poolFactor={m.poolFactor} limit={m.heatLimit || limitOf(heat.arr)} label="weights" />
      )}
      {delta.arr !== null && (
        <Heatmap
          arr={delta.arr}
          matrixShape={m.matrixShape}
          poolFactor={[Math.ceil((m.matrixShape[0] ?? 1) / delta.arr.shape[0]), Math.ceil((m.matrixShape[1] ?? 1) / (delta.arr.shape[1] ?? 1))]}
          limit={limitOf(delta.arr)}
          label="Δ = b − a"
          testid="weights-delta"
        />
      )}
      {filters.arr !== null && <Filters arr={filters.arr} />}
      {esd !== null && <Esd esd={esd} />}
    </div>
  );
}
