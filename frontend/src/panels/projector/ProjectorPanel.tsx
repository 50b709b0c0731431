// The dashboard's Projector panel: a logged embedding (`run.log_embedding`) projected on the
// server (PCA, t-SNE, UMAP; 2-D or 3-D) and drawn point by point in WebGL. Colour and size by
// column, hover card with the sprite thumbnail, click for the k nearest neighbours in the
// original space, lasso selection with CSV export, search, and two steps side by side.
// Deep link: `#/projector?run=…&tag=…&step=…&method=…&dims=…&color=…`.

import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { hashParams, setHashParams } from '../../route';
import { projectorApi, spriteUrl, type Column, type EmbeddingInfo, type Method, type ProjectRequest } from './api';
import { HoverCard, Legend, Progress, SelectionList, type Selection } from './Details';
import { colorBy, labelColumn, searchPoints, sizeBy, uniformColor } from './encoding';
import { Scatter, type MouseMode } from './Scatter';
import { useProjection, type ProjectionView } from './useProjection';
import './projector.css';

const METHODS: [Method, string][] = [
  ['pca', 'PCA'],
  ['tsne', 't-SNE'],
  ['umap', 'UMAP'],
];

export function ProjectorPanel() {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 500);
  const [byRun, setByRun] = useState<Record<string, EmbeddingInfo[]>>({});
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const key = selected.join('\u0000');
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(selected.map((run) => projectorApi.embeddings(run, ctl.signal).then((r) => [run, r.embeddings] as const)))
      .then((all) => {
        setByRun(Object.fromEntries(all));
        setError(null);
        setLoaded(true);
      })
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [key, version]);
  const runs = selected.filter((r) => (byRun[r]?.length ?? 0) > 0);
  const [run, setRun] = useState<string | null>(hashParams(location.hash).get('run'));
  const shown = run !== null && runs.includes(run) ? run : runs[0];
  return (
    <section class="panel" data-testid="panel-projector">
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : shown === undefined ? (
        <div class="empty" data-testid="projector-empty">
          {loaded ? 'No embeddings logged in the selected runs (run.log_embedding).' : 'Loading…'}
        </div>
      ) : (
        <RunProjector key={shown} run={shown} runs={runs} embeddings={byRun[shown]}
          onRun={(r) => {
            setRun(r);
            setHashParams('projector', { run: r, tag: null, step: null });
          }} />
      )}
    </section>
  );
}

function numParam(p: URLSearchParams, name: string): number | null {
  const v = p.get(name);
  return v === null || v === '' || !Number.isFinite(Number(v)) ? null : Number(v);
}

interface RunProps {
  run: string;
  runs: string[];
  embeddings: EmbeddingInfo[];
  onRun: (r: string) => void;
}

function RunProjector({ run, runs, embeddings, onRun }: RunProps) {
  const linked = useMemo(() => hashParams(location.hash), []);
  const tags = useMemo(() => [...new Set(embeddings.map((e) => e.tag))], [embeddings]);
  const [tag, setTag] = useState(linked.get('tag') ?? tags[0]);
  const tagShown = tags.includes(tag) ? tag : tags[0];
  const steps = useMemo(
    () => embeddings.filter((e) => e.tag === tagShown).map((e) => e.step).sort((a, b) => a - b),
    [embeddings, tagShown],
  );
  const [step, setStep] = useState<number | null>(numParam(linked, 'step'));
  const stepShown = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const info = embeddings.find((e) => e.tag === tagShown && e.step === stepShown) ?? embeddings[0];
  const [method, setMethod] = useState<Method>((['pca', 'tsne', 'umap'] as const).find((m) => m === linked.get('method')) ?? 'pca');
  const [dims, setDims] = useState<2 | 3>(linked.get('dims') === '3' ? 3 : 2);
  const [perplexity, setPerplexity] = useState(30);
  const [neighbors, setNeighbors] = useState(15);
  const [minDist, setMinDist] = useState(0.1);
  const [compare, setCompare] = useState(false);
  const [stepB, setStepB] = useState<number | null>(null);
  const stepBShown = stepB !== null && steps.includes(stepB) ? stepB : steps[0];
  const [colorName, setColorName] = useState<string | null>(linked.get('color'));
  const [sizeName, setSizeName] = useState<string | null>(null);
  const [mode, setMode] = useState<MouseMode>(dims === 3 ? 'rotate' : 'pan');
  const [metric, setMetric] = useState<'cosine' | 'euclidean'>('cosine');
  const [query, setQuery] = useState('');
  const [sel, setSel] = useState<Selection | null>(null);
  const [hover, setHover] = useState<{ plot: string; index: number; x: number; y: number } | null>(null);
  const [columns, setColumns] = useState<Column[]>([]);
  const [colError, setColError] = useState<string | null>(null);
  const [sprite, setSprite] = useState<HTMLImageElement | null>(null);

  useEffect(() => {
    setHashParams('projector', {
      run, tag: tagShown, step: String(stepShown), method, dims: String(dims), color: colorName,
    });
  }, [run, tagShown, stepShown, method, dims, colorName]);

  useEffect(() => {
    const ctl = new AbortController();
    setColumns([]);
    setSel(null);
    projectorApi
      .columns(run, tagShown, stepShown, ctl.signal)
      .then((r) => {
        setColumns(r.columns);
        setColError(null);
      })
      .catch((e: unknown) => !ctl.signal.aborted && setColError(String(e)));
    return () => ctl.abort();
  }, [run, tagShown, stepShown]);

  useEffect(() => {
    setSprite(null);
    if (!info.sprite) return;
    const img = new Image();
    img.onload = () => setSprite(img);
    img.src = spriteUrl(run, tagShown, stepShown);
  }, [run, tagShown, stepShown, info.sprite?.count]);

  const params: Record<string, number> =
    method === 'tsne' ? { perplexity } : method === 'umap' ? { n_neighbors: neighbors, min_dist: minDist } : {};
  const request = (s: number): ProjectRequest => ({ run, tag: tagShown, step: s, method, dims, params });
  const projA = useProjection(request(stepShown), 'a');
  const projB = useProjection(compare ? request(stepBShown) : null, 'b');

  const n = info.n;
  const colorCol = columns.find((c) => c.name === colorName && c.type !== 'text');
  const color = useMemo(() => (colorCol ? colorBy(colorCol, n) : uniformColor(n)), [colorCol, n]);
  const size = useMemo(() => sizeBy(columns.find((c) => c.name === sizeName), n), [columns, sizeName, n]);
  const label = useMemo(() => labelColumn(columns), [columns]);
  const baseSize = n > 500_000 ? 2 : n > 50_000 ? 3 : n > 5_000 ? 4 : 6;
  const highlight = useMemo(() => sel?.indices ?? [], [sel]);

  // default colour: the label column (or the first category)
  useEffect(() => {
    if (colorName === null && columns.length > 0) {
      const first = columns.find((c) => c.type === 'category');
      if (first) setColorName(first.name);
    }
  }, [columns]);

  const debouncedQuery = useDebounced(query, 250);
  useEffect(() => {
    if (debouncedQuery.trim() === '') {
      setSel((s) => (s?.source === 'search' ? null : s));
      return;
    }
    setSel({ source: 'search', indices: searchPoints(columns, n, debouncedQuery), query: debouncedQuery });
  }, [debouncedQuery, columns]);

  const showNeighbors = (index: number) => {
    projectorApi
      .neighbors(run, tagShown, stepShown, index, 10, metric)
      .then((r) => setSel({ source: 'neighbors', anchor: index, neighbors: r.neighbors, indices: [index, ...r.neighbors.map((x) => x.index)] }))
      .catch((e: unknown) => setColError(String(e)));
  };

  const plotProps = (id: string) => ({
    id,
    color,
    size,
    baseSize,
    highlight,
    mode,
    onHover: (i: number | null, x: number, y: number) => setHover(i === null ? null : { plot: id, index: i, x, y }),
    onClick: showNeighbors,
    onLasso: (indices: number[]) => setSel({ source: 'lasso', indices: [...indices].sort((a, b) => a - b) }),
    onDeselect: () => setSel(null),
  });

  const pickDims = (d: 2 | 3) => {
    setDims(d);
    setMode(d === 3 ? 'rotate' : 'pan');
  };

  return (
    <div class="card proj-card" data-testid="projector-card" data-run={run}>
      <div class="toolbar proj-toolbar">
        <Select label="run" testid="proj-run" value={run} options={runs} onChange={onRun} />
        <Select label="tag" testid="proj-tag" value={tagShown} options={tags} onChange={(t) => { setTag(t); setStep(null); }} />
        <Select label="step" testid="proj-step" value={String(stepShown)} options={steps.map(String)} onChange={(s) => setStep(Number(s))} />
        <span class="muted num">{n.toLocaleString()} points × {info.dim}</span>
      </div>
      <div class="toolbar proj-toolbar">
        <div class="proj-seg" role="group" aria-label="method">
          {METHODS.map(([m, name]) => (
            <button key={m} type="button" class={m === method ? 'active' : ''} data-testid={`proj-method-${m}`}
              aria-pressed={m === method} onClick={() => setMethod(m)}>
              {name}
            </button>
          ))}
        </div>
        {method === 'tsne' && <NumInput label="perplexity" testid="proj-perplexity" value={perplexity} min={2} max={200} step={1} onChange={setPerplexity} />}
        {method === 'umap' && <NumInput label="neighbours" testid="proj-neighbors" value={neighbors} min={2} max={200} step={1} onChange={setNeighbors} />}
        {method === 'umap' && <NumInput label="min dist" testid="proj-mindist" value={minDist} min={0} max={1} step={0.05} onChange={setMinDist} />}
        <div class="proj-seg" role="group" aria-label="dimensions">
          {([2, 3] as const).map((d) => (
            <button key={d} type="button" class={d === dims ? 'active' : ''} data-testid={`proj-dims-${d}`} onClick={() => pickDims(d)}>
              {d}-D
            </button>
          ))}
        </div>
        <div class="proj-seg" role="group" aria-label="mouse">
          {(['pan', 'lasso', ...(dims === 3 ? ['rotate'] : [])] as MouseMode[]).map((m) => (
            <button key={m} type="button" class={m === mode ? 'active' : ''} data-testid={`proj-mode-${m}`} onClick={() => setMode(m)}>
              {m === 'pan' ? 'Pan/zoom' : m === 'lasso' ? 'Lasso' : 'Rotate'}
            </button>
          ))}
        </div>
        <label class="control">
          <input type="checkbox" data-testid="proj-compare" checked={compare} onChange={(e) => setCompare((e.target as HTMLInputElement).checked)} />
          compare with step
        </label>
        {compare && <Select label="" testid="proj-step-b" value={String(stepBShown)} options={steps.map(String)} onChange={(s) => setStepB(Number(s))} />}
      </div>
      <div class="toolbar proj-toolbar">
        <Select label="colour" testid="proj-color" value={colorName ?? ''} onChange={(c) => setColorName(c === '' ? null : c)}
          options={['', ...columns.filter((c) => c.type !== 'text').map((c) => c.name)]} />
        <Select label="size" testid="proj-size" value={sizeName ?? ''} onChange={(c) => setSizeName(c === '' ? null : c)}
          options={['', ...columns.filter((c) => c.type === 'number').map((c) => c.name)]} />
        <Select label="neighbours by" testid="proj-metric" value={metric} options={['cosine', 'euclidean']}
          onChange={(m) => setMetric(m === 'euclidean' ? 'euclidean' : 'cosine')} />
        <input class="filter" type="search" placeholder="search labels / text" data-testid="proj-search" value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
      </div>
      {colError !== null && <div class="error">{colError}</div>}
      <div class="proj-layout">
        <div class={compare ? 'proj-plots two' : 'proj-plots'}>
          <PlotBox title={compare ? `step ${stepShown}` : null} proj={projA} hover={hover?.plot === 'a' ? hover : null}
            columns={columns} label={label} info={info} img={sprite}>
            <Scatter {...plotProps('a')} coords={projA.coords} />
          </PlotBox>
          {compare && (
            <PlotBox title={`step ${stepBShown}`} proj={projB} hover={hover?.plot === 'b' ? hover : null}
              columns={columns} label={label} info={info} img={sprite}>
              <Scatter {...plotProps('b')} coords={projB.coords} />
            </PlotBox>
          )}
        </div>
        <aside class="proj-side">
          <Legend column={colorCol?.name ?? null} enc={color} />
          {sel !== null ? (
            <SelectionList sel={sel} columns={columns} label={label} coords={projA.coords} fileName={`${tagShown.replace(/[^\w.-]+/g, '_')}-selection.csv`}
              onClear={() => setSel(null)} onPick={showNeighbors} />
          ) : (
            <div class="muted proj-help">
              Hover a point for its label; click one for its nearest neighbours; drag in Lasso mode (or shift-drag) to select.
            </div>
          )}
        </aside>
      </div>
    </div>
  );
}

interface PlotBoxProps {
  title: string | null;
  proj: ProjectionView;
  hover: { index: number; x: number; y: number } | null;
  columns: Column[];
  label: Column | undefined;
  info: EmbeddingInfo;
  img: HTMLImageElement | null;
  children: ComponentChildren;
}

function PlotBox({ title, proj, hover, columns, label, info, img, children }: PlotBoxProps) {
  const area = useRef<HTMLDivElement>(null);
  const dropped = useMemo(() => {
    const c = proj.coords;
    if (c === null) return 0;
    let k = 0;
    for (let i = 0; i < c.n; i++) {
      for (let d = 0; d < c.dims; d++) {
        if (!Number.isFinite(c.data[i * c.dims + d])) {
          k++;
          break;
        }
      }
    }
    return k;
  }, [proj.coords]);
  return (
    <div class="proj-plot-wrap" data-testid="proj-plot-wrap" data-state={proj.state} data-key={proj.key ?? ''}
      data-coords-key={proj.coordsKey ?? ''} data-partial={String(proj.partial)}>
      <div class="proj-plot-head">
        {title !== null && <strong>{title}</strong>}
        <Progress state={proj.state} progress={proj.progress} partial={proj.partial} onCancel={proj.cancel} />
        {proj.state === 'cancelled' && <span class="muted">cancelled</span>}
        {dropped > 0 && (
          <span class="proj-dropped" data-testid="proj-dropped">
            {dropped.toLocaleString()} points dropped (NaN/Inf)
          </span>
        )}
        {proj.error !== null && <span class="error" data-testid="proj-error">{proj.error}</span>}
      </div>
      <div class="proj-plot-area" ref={area}>
        {children}
        {proj.coords === null && proj.state !== 'error' && <div class="proj-wait muted">waiting for the projection…</div>}
        {hover !== null && (
          <HoverCard index={hover.index} columns={columns} label={label} sprite={info.sprite} img={img}
            x={hover.x > (area.current?.clientWidth ?? 1e9) - 360 ? hover.x - 370 : hover.x}
            y={hover.y > (area.current?.clientHeight ?? 1e9) - 200 ? hover.y - 200 : hover.y} />
        )}
      </div>
    </div>
  );
}

function Select({ label, testid, value, options, onChange }: { label: string; testid: string; value: string; options: string[]; onChange: (v: string) => void }) {
  return (
    <label class="control">
      {label}
      <select data-testid={testid} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {options.map((o) => (
          <option key={o} value={o}>
            {o === '' ? '(none)' : o}
          </option>
        ))}
      </select>
    </label>
  );
}

function NumInput(props: { label: string; testid: string; value: number; min: number; max: number; step: number; onChange: (v: number) => void }) {
  const [text, setText] = useState(String(props.value));
  return (
    <label class="control">
      {props.label}
      <input type="number" class="proj-num" data-testid={props.testid} value={text} min={props.min} max={props.max} step={props.step}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onChange={(e) => {
          const v = Number((e.target as HTMLInputElement).value);
          if (Number.isFinite(v) && v >= props.min && v <= props.max) props.onChange(v);
        }} />
    </label>
  );
}
