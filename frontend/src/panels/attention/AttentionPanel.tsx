// The Attention panel (view kind `attention`, `run.log_attention`): pick a run, tag, step,
// layer (or the rollout) and head; see it as a head view (token lines), the model view
// (every layer × head), the matrix heatmap (pooled overview with zoom for long contexts),
// the patch map over the input image (vision) or the generation view (decoders). Deep
// link: `#/attention?run=…&layer=…&head=…&mode=…`.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { blobUrl } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { hashParams, setHashParams } from '../../route';
import { fetchView } from '../../views/registry';
import type { AttentionItem, AttentionView } from '../../wire/types';
import { fetchPart, headMatrix, type Matrix } from './data';
import { GenerationView } from './GenerationView';
import { HEAD_COLORS, HeadView } from './HeadView';
import { ImageOverlay } from './ImageOverlay';
import { MatrixView } from './MatrixView';
import { ModelView } from './ModelView';
import './attention.css';

/** The head view draws lines for at most this many queries and keys. */
export const HEAD_VIEW_MAX = 256;
type Mode = 'heads' | 'model' | 'matrix' | 'image' | 'generation';
const MODE_TITLES: Record<Mode, string> = { heads: 'head view', model: 'model view', matrix: 'matrix', image: 'image', generation: 'generation' };

export function AttentionPanel() {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const [views, setViews] = useState<Record<string, AttentionView>>({});
  const [error, setError] = useState<string | null>(null);
  const key = selected.join('\u0000');
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(selected.map((run) => fetchView('attention', run, {}, ctl.signal)))
      .then((all) => {
        setViews(Object.fromEntries(all.map((v) => [v.run, v])));
        setError(null);
      })
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [key, version]);
  const withItems = selected.filter((r) => (views[r]?.items.length ?? 0) > 0);
  const [run, setRun] = useState<string | null>(hashParams(location.hash).get('run'));
  // a deep link typed or followed while the panel is open re-reads run/layer/head/mode
  // (the panel's own updates use replaceState, which fires no hashchange)
  const [linkKey, setLinkKey] = useState(0);
  useEffect(() => {
    const onHash = () => {
      setRun(hashParams(location.hash).get('run'));
      setLinkKey((k) => k + 1);
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const shown = run !== null && withItems.includes(run) ? run : withItems[0];
  return (
    <section class="panel" data-testid="panel-attention">
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : shown === undefined ? (
        <div class="empty" data-testid="attention-empty">
          No attention logged in the selected runs (run.log_attention).
        </div>
      ) : (
        <RunAttention key={`${shown}\u0000${linkKey}`} view={views[shown]} runs={withItems}
          onRun={(r) => {
            setRun(r);
            setHashParams('attention', { run: r, layer: null, head: null });
          }} />
      )}
    </section>
  );
}

function Select<T extends string | number>(props: { label: string; value: T; options: [T, string][]; testid: string; onChange: (v: string) => void }) {
  return (
    <label class="control">
      {props.label}
      <select data-testid={props.testid} value={String(props.value)} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map(([v, text]) => (
          <option key={String(v)} value={String(v)}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

function RunAttention({ view, runs, onRun }: { view: AttentionView; runs: string[]; onRun: (r: string) => void }) {
  const { colorOf } = useDashboard();
  const { run, items } = view;
  const linked = hashParams(location.hash);
  const [tag, setTag] = useState<string | null>(linked.get('tag'));
  const [step, setStep] = useState<number | null>(linked.has('step') ? Number(linked.get('step')) : null);
  const [layer, setLayer] = useState<string | null>(linked.get('layer'));
  const [head, setHead] = useState<number | null>(linked.has('head') && linked.get('head') !== 'all' ? Number(linked.get('head')) : null);
  const [mode, setMode] = useState<Mode | null>((linked.get('mode') as Mode | null) ?? null);
  const tags = useMemo(() => [...new Set(items.map((i) => i.tag))], [items]);
  const tagShown = tag !== null && tags.includes(tag) ? tag : tags[tags.length - 1];
  const steps = useMemo(() => [...new Set(items.filter((i) => i.tag === tagShown).map((i) => i.step))].sort((a, b) => a - b), [items, tagShown]);
  const stepShown = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const here = useMemo(() => items.filter((i) => i.tag === tagShown && i.step === stepShown), [items, tagShown, stepShown]);
  const item = here.find((i) => i.meta.layer === layer) ?? here[0];
  const headIndex = head !== null && item ? item.meta.heads.indexOf(head) : -1;
  const link = (values: Record<string, string | null>) => setHashParams('attention', { run, ...values });
  const tooBig = !item || item.meta.pooled || item.meta.shape[1] > HEAD_VIEW_MAX || item.meta.shape[2] > HEAD_VIEW_MAX;
  const modes: Mode[] = ['heads', 'model', 'matrix'];
  if (item?.meta.patchGrid && item.parts.image) modes.push('image');
  if (item?.meta.promptLength !== undefined && !item.meta.pooled) modes.push('generation');
  const wanted = mode ?? (item?.meta.patchGrid && item.parts.image ? 'image' : tooBig ? 'matrix' : 'heads');
  const modeShown: Mode = modes.includes(wanted) && !(wanted === 'heads' && tooBig) ? wanted : 'matrix';
  return (
    <div class="card attn-card" data-testid="attention-card" data-run={run}>
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(run) }} />
        <Select label="run" testid="attn-run" value={run} options={runs.map((r) => [r, r])} onChange={onRun} />
        {tags.length > 1 && <Select label="tag" testid="attn-tag" value={tagShown} options={tags.map((t) => [t, t])} onChange={(t) => { setTag(t); link({ tag: t }); }} />}
        <Select label="step" testid="attn-step" value={stepShown} options={steps.map((s) => [s, String(s)])} onChange={(s) => { setStep(Number(s)); link({ step: s }); }} />
        <Select label="layer" testid="attn-layer" value={item?.meta.layer ?? ''} options={here.map((i) => [i.meta.layer, i.meta.view === 'layer' ? i.meta.layer : `${i.meta.view} (all layers)`])}
          onChange={(l) => { setLayer(l); link({ layer: l }); }} />
        {item && item.meta.heads.length > 1 && (
          <Select label="head" testid="attn-head" value={headIndex >= 0 ? String(head) : 'all'}
            options={[['all', 'all heads'], ...item.meta.heads.map((h): [string, string] => [String(h), `head ${h}`])]}
            onChange={(h) => { setHead(h === 'all' ? null : Number(h)); link({ head: h }); }} />
        )}
      </div>
      <nav class="attn-modes" role="tablist">
        {modes.map((m) => (
          <button key={m} type="button" role="tab" class={m === modeShown ? 'active' : ''} data-testid={`attn-mode-${m}`} aria-selected={m === modeShown}
            disabled={m === 'heads' && tooBig} title={m === 'heads' && tooBig ? `the head view draws up to ${HEAD_VIEW_MAX} tokens: use the matrix` : ''}
            onClick={() => { setMode(m); link({ mode: m }); }}>
            {MODE_TITLES[m]}
          </button>
        ))}
        {item && (
          <span class="muted num">
            {item.meta.view === 'layer' ? `${item.meta.nHeads} heads` : item.meta.view} · {item.meta.shape[1]} queries × {item.meta.shape[2]} keys · path {item.meta.path || '?'}
            {item.meta.pooled ? ` · pooled ${item.meta.block}×${item.meta.block}` : ''}
          </span>
        )}
      </nav>
      {modeShown === 'model' ? (
        <ModelView run={run} items={here.filter((i) => i.meta.view === 'layer')}
          onOpen={(l, h) => { setLayer(l); setHead(h); setMode('matrix'); link({ layer: l, head: String(h), mode: 'matrix' }); }} />
      ) : item ? (
        <ItemView key={item.id} run={run} item={item} head={headIndex >= 0 ? headIndex : null} mode={modeShown} />
      ) : (
        <div class="empty">nothing logged here</div>
      )}
    </div>
  );
}

interface Loaded {
  tokens: string[];
  arr: import('../../wire/envelope').WireArray | null;
  pooled: { max: import('../../wire/envelope').WireArray; mean: import('../../wire/envelope').WireArray } | null;
  at: number;
}

function ItemView({ run, item, head, mode }: { run: string; item: AttentionItem; head: number | null; mode: Mode }) {
  const [data, setData] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { meta, parts } = item;
  useEffect(() => {
    const ctl = new AbortController();
    const tokens = fetch(blobUrl(run, item.id), { credentials: 'same-origin', signal: ctl.signal })
      .then((r) => r.json() as Promise<{ tokens: string[] }>)
      .then((d) => d.tokens.map(String));
    const load = async (): Promise<Loaded> => {
      if (meta.pooled) {
        if (!parts.pooled_max || !parts.pooled_mean) throw new Error('the pooled arrays of this layer were not logged');
        const [t, max, mean] = await Promise.all([
          tokens,
          fetchPart(run, parts.pooled_max.id, {}, null, ctl.signal),
          fetchPart(run, parts.pooled_mean.id, {}, null, ctl.signal),
        ]);
        return { tokens: t, arr: null, pooled: { max, mean }, at: performance.now() };
      }
      if (!parts.weights) throw new Error('the weights of this layer were not logged');
      const [t, arr] = await Promise.all([tokens, fetchPart(run, parts.weights.id, {}, null, ctl.signal)]);
      return { tokens: t, arr, pooled: null, at: performance.now() };
    };
    load()
      .then(setData)
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [run, item.id]);
  const full = useMemo<Matrix | null>(() => (data?.arr ? headMatrix(data.arr, head) : null), [data, head]);
  const pooled = useMemo(
    () => (data?.pooled ? { max: headMatrix(data.pooled.max, head, 'max'), mean: headMatrix(data.pooled.mean, head) } : null),
    [data, head],
  );
  const perHead = useMemo(() => {
    if (!data?.arr || mode !== 'heads') return [];
    const which = head === null ? meta.heads.map((_, i) => i) : [head];
    return which.map((k) => ({ head: meta.heads[k], color: HEAD_COLORS[meta.heads[k] % HEAD_COLORS.length], m: headMatrix(data.arr!, k) }));
  }, [data, head, mode]);
  if (error !== null) return <div class="error">{error}</div>;
  if (data === null) return <div class="muted">loading…</div>;
  const q0 = meta.queryStart;
  const sampled = data.arr && data.arr.shape.length === 3 ? Math.ceil(meta.shape[1] / data.arr.shape[1]) : 1;
  const queryLabels = Array.from({ length: meta.shape[1] }, (_, i) => data.tokens[q0 + i] ?? String(q0 + i));
  return (
    <div class="attn-body" data-testid="attn-item" data-layer={meta.layer} data-head={head === null ? 'all' : meta.heads[head]} data-loaded-at={data.at}>
      {sampled > 1 && mode !== 'matrix' && <div class="muted">this copy holds the weights averaged over {sampled}×{sampled} blocks: see the matrix</div>}
      {mode === 'heads' && sampled === 1 && <HeadView heads={perHead} queryLabels={queryLabels} keyLabels={data.tokens.slice(0, meta.shape[2])} />}
      {mode === 'matrix' && <MatrixView run={run} item={item} tokens={data.tokens} full={full} pooled={pooled} head={head} sampled={sampled} />}
      {mode === 'image' && sampled === 1 && full && parts.image && meta.patchGrid && (
        <ImageOverlay m={full} grid={meta.patchGrid} tokens={data.tokens} queryStart={q0} image={blobUrl(run, parts.image.id)} />
      )}
      {mode === 'generation' && sampled === 1 && full && (
        <GenerationView m={full} tokens={data.tokens} queryStart={q0} promptLength={meta.promptLength ?? 0} />
      )}
    </div>
  );
}
