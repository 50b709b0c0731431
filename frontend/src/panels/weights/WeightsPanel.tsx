// The dashboard's Weights tab. For runs: a run's logged weights (`run.log_weights`, view kind
// `weights`), a tag, a step slider over the logged steps, the sortable statistics table and
// the selected tensor's heatmap, filters and ESD. Under `deepscope view MODEL` (or `deepscope
// diff A B --serve`): the served model's tensors (and the diff's rows). Deep link:
// `#/weights?run=…&tensor=…&step=…`.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { hashParams, setHashParams } from '../../route';
import { fetchView } from '../../views/registry';
import type { ModelWeightsTable, WeightsItem, WeightsView } from '../../wire/types';
import { fromItem, modelTable, modelTensors, type TensorData } from './data';
import { StatsTable } from './StatsTable';
import { TensorDetail } from './TensorDetail';
import './weights.css';

export function WeightsPanel() {
  const { modelMode } = useDashboard();
  return (
    <section class="panel" data-testid="panel-weights">
      {modelMode ? <ModelWeights /> : <RunWeights />}
    </section>
  );
}

function RunWeights() {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const [views, setViews] = useState<Record<string, WeightsView>>({});
  const [error, setError] = useState<string | null>(null);
  const key = selected.join('\u0000');
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(selected.map((run) => fetchView('weights', run, {}, ctl.signal)))
      .then((all) => {
        setViews(Object.fromEntries(all.map((v) => [v.run, v])));
        setError(null);
      })
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [key, version]);
  const withItems = selected.filter((r) => (views[r]?.items.length ?? 0) > 0);
  const [run, setRun] = useState<string | null>(hashParams(location.hash).get('run'));
  const shown = run !== null && withItems.includes(run) ? run : withItems[0];
  if (error !== null) return <div class="error">{error}</div>;
  if (selected.length === 0) return <div class="empty">No run selected: pick runs in the Runs tab.</div>;
  if (shown === undefined) {
    return (
      <div class="empty" data-testid="weights-empty">
        No weights logged in the selected runs: run.log_weights("weights", deepscope.weights(model), step=...).
      </div>
    );
  }
  return (
    <RunCard key={shown} view={views[shown]} runs={withItems}
      onRun={(r) => { setRun(r); setHashParams('weights', { run: r, tensor: null, step: null }); }} />
  );
}

function RunCard({ view, runs, onRun }: { view: WeightsView; runs: string[]; onRun: (r: string) => void }) {
  const { run, items } = view;
  const linked = hashParams(location.hash);
  const tags = useMemo(() => [...new Set(items.map((i) => i.tag))], [items]);
  const [tag, setTag] = useState<string>(tags[0]);
  const tagShown = tags.includes(tag) ? tag : tags[0];
  const steps = useMemo(
    () => [...new Set(items.filter((i) => i.tag === tagShown).map((i) => i.step))].sort((a, b) => a - b),
    [items, tagShown],
  );
  const [step, setStep] = useState<number | null>(linked.has('step') ? Number(linked.get('step')) : null);
  const atStep = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const here = useMemo(() => items.filter((i) => i.tag === tagShown && i.step === atStep), [items, tagShown, atStep]);
  const [tensor, setTensor] = useState<string | null>(linked.get('tensor'));
  const item: WeightsItem | undefined = here.find((i) => i.meta.entry === tensor) ?? here[0];
  const data = useMemo(() => (item ? fromItem(run, item) : null), [run, item?.id]);
  const pickStep = (s: number) => {
    setStep(s);
    setHashParams('weights', { run, step: String(s) });
  };
  return (
    <div class="card wt-card" data-testid="weights-card" data-run={run}>
      <div class="card-head">
        <label class="control">
          run
          <select data-testid="weights-run" value={run} onChange={(e) => onRun((e.target as HTMLSelectElement).value)}>
            {runs.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        {tags.length > 1 && (
          <label class="control">
            tag
            <select data-testid="weights-tag" value={tagShown} onChange={(e) => setTag((e.target as HTMLSelectElement).value)}>
              {tags.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
        )}
        <label class="control">
          step
          <input type="range" data-testid="weights-step" min={0} max={Math.max(0, steps.length - 1)} step={1}
            value={Math.max(0, steps.indexOf(atStep))}
            onInput={(e) => pickStep(steps[Number((e.target as HTMLInputElement).value)])} />
          <span class="num" data-testid="weights-step-value">
            {atStep} ({steps.indexOf(atStep) + 1} of {steps.length})
          </span>
        </label>
      </div>
      <div class="wt-layout">
        <div class="wt-left">
          <StatsTable metas={here.map((i) => i.meta)} diff={null} selected={item?.meta.entry ?? null}
            onSelect={(n) => { setTensor(n); setHashParams('weights', { run, tensor: n }); }} />
        </div>
        <div class="wt-right">{data !== null && <TensorDetail key={`${data.name}@${atStep}`} t={data} />}</div>
      </div>
    </div>
  );
}

function ModelWeights() {
  const [table, setTable] = useState<ModelWeightsTable | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tensor, setTensor] = useState<string | null>(hashParams(location.hash).get('tensor'));
  const [data, setData] = useState<TensorData | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    modelTable(true, ctl.signal)
      .then(setTable)
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, []);
  const diff = useMemo(() => (table?.diff ? new Map(table.diff.map((d) => [d.name, d])) : null), [table]);
  const metas = table?.tensors ?? [];
  const shown = tensor !== null && metas.some((m) => m.entry === tensor) ? tensor : (metas.find((m) => diff?.get(m.entry)?.status === 'changed') ?? metas[0])?.entry;
  useEffect(() => {
    if (shown === undefined) return;
    const ctl = new AbortController();
    modelTensors({ name: [shown] }, ctl.signal)
      .then((ts) => setData(ts[0] ?? null))
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [shown]);
  if (error !== null) return <div class="error">{error}</div>;
  if (table === null) return <div class="muted">reading the model's tensors…</div>;
  const changed = table.diff?.filter((d) => d.status !== 'same') ?? [];
  return (
    <div class="card wt-card" data-testid="weights-card" data-mode={table.mode}>
      <div class="card-head">
        <span class="card-title">{table.mode === 'diff' ? `diff ${table.labels[0]} → ${table.labels[1]}` : table.labels[0]}</span>
        <span class="muted">
          {metas.length} tensors{table.skipped ? ` · ${table.skipped} without readable values` : ''}
          {table.diff ? ` · ${changed.length} differ` : ''}
        </span>
      </div>
      {table.diff && (
        <div class="wt-changes" data-testid="weights-diff-list">
          {changed.map((d) => (
            <span key={d.name} class="wt-change">
              <b>{d.status}</b> {d.name}
              {d.status === 'reshaped' ? ` ${d.shapeA?.join('×')} → ${d.shapeB?.join('×')}` : ''}
            </span>
          ))}
        </div>
      )}
      <div class="wt-layout">
        <div class="wt-left">
          <StatsTable metas={metas} diff={diff} selected={shown ?? null}
            onSelect={(n) => { setTensor(n); setHashParams('weights', { tensor: n }); }} />
        </div>
        <div class="wt-right">{data !== null && <TensorDetail key={data.name} t={data} />}</div>
      </div>
    </div>
  );
}
