// The dashboard's Atlas panel (view kind `atlas`, `deepscope.atlas(..., run=run)`): for
// every channel of a layer, its optimised image beside its top-k dataset examples with
// their activations, a page of cards at a time; a click enlarges one channel. The graph
// inspector links a layer's node here. Deep link: `#/atlas?run=…&layer=…&page=…`.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { hashParams, setHashParams } from '../../route';
import { fetchView } from '../../views/registry';
import type { AtlasItem, AtlasView } from '../../wire/types';
import { AtlasCard, AtlasDetail } from './AtlasCard';
import { useAtlasData } from './sprites';
import './atlas.css';

/** Channels per page. */
export const PAGE_SIZE = 24;

export function AtlasPanel() {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const [views, setViews] = useState<Record<string, AtlasView>>({});
  const [error, setError] = useState<string | null>(null);
  const key = selected.join('\u0000');
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(selected.map((run) => fetchView('atlas', run, {}, ctl.signal)))
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
  return (
    <section class="panel" data-testid="panel-atlas">
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : shown === undefined ? (
        <div class="empty" data-testid="atlas-empty">
          No neuron atlas logged in the selected runs (deepscope.atlas(model, layer, loader, run=run)).
        </div>
      ) : (
        <RunAtlas
          key={shown}
          view={views[shown]}
          runs={withItems}
          onRun={(r) => {
            setRun(r);
            setHashParams('atlas', { run: r, layer: null, page: null });
          }}
        />
      )}
    </section>
  );
}

/** The latest atlas of each layer, in logging order. */
function latestByLayer(items: AtlasItem[]): AtlasItem[] {
  const out = new Map<string, AtlasItem>();
  for (const i of items) {
    const old = out.get(i.meta.layer);
    if (old === undefined || i.step >= old.step) out.set(i.meta.layer, i);
  }
  return [...out.values()];
}

function RunAtlas({ view, runs, onRun }: { view: AtlasView; runs: string[]; onRun: (r: string) => void }) {
  const { colorOf } = useDashboard();
  const linked = hashParams(location.hash);
  const layers = useMemo(() => latestByLayer(view.items), [view.items]);
  const [layer, setLayer] = useState<string | null>(linked.get('layer'));
  const item = layers.find((l) => l.meta.layer === layer) ?? layers[0];
  const pickLayer = (l: string) => {
    setLayer(l);
    setHashParams('atlas', { run: view.run, layer: l, page: null });
  };
  return (
    <div class="card atlas-run">
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(view.run) }} />
        {runs.length > 1 ? (
          <select data-testid="atlas-run" value={view.run} onChange={(e) => onRun((e.target as HTMLSelectElement).value)}>
            {runs.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        ) : (
          <strong>{view.run}</strong>
        )}
        {layers.length > 1 && (
          <label class="control">
            layer
            <select data-testid="atlas-layer" value={item.meta.layer} onChange={(e) => pickLayer((e.target as HTMLSelectElement).value)}>
              {layers.map((l) => (
                <option key={l.meta.layer} value={l.meta.layer}>
                  {l.meta.layer}
                </option>
              ))}
            </select>
          </label>
        )}
        <span class="muted" data-testid="atlas-summary">
          {`${item.meta.layer}: ${item.meta.channels} channels · ${item.meta.steps} steps · top ${item.meta.topK} examples · step ${item.step}`}
        </span>
      </div>
      <p class="muted atlas-legend">
        {`Each card: a channel's optimised image (its activation, the channel's spatial ${item.meta.measure}, green when above every example's) beside the ${item.meta.topK} dataset inputs that excite it most, with theirs. Click a card to enlarge it.`}
      </p>
      <LayerAtlas key={`${item.id}`} run={view.run} item={item} />
    </div>
  );
}

function LayerAtlas({ run, item }: { run: string; item: AtlasItem }) {
  const { data, error } = useAtlasData(run, item);
  const pages = Math.max(1, Math.ceil(item.meta.channels / PAGE_SIZE));
  const linkedPage = Number(hashParams(location.hash).get('page') ?? '0');
  const [page, setPage] = useState(Number.isInteger(linkedPage) ? Math.min(Math.max(linkedPage, 0), pages - 1) : 0);
  const [open, setOpen] = useState<number | null>(null);
  const goPage = (p: number) => {
    setPage(p);
    setHashParams('atlas', { run, layer: item.meta.layer, page: p === 0 ? null : String(p) });
  };
  if (error !== null) return <div class="error">{error}</div>;
  if (data === null) return <div class="muted">loading…</div>;
  const first = page * PAGE_SIZE;
  const channels = data.doc.channels.slice(first, first + PAGE_SIZE);
  return (
    <div class="atlas-body">
      {pages > 1 && (
        <div class="atlas-pager" data-testid="atlas-pager">
          <button type="button" data-testid="atlas-prev" disabled={page === 0} onClick={() => goPage(page - 1)}>
            ‹ prev
          </button>
          <span data-testid="atlas-page">{`channels ${first}–${first + channels.length - 1} of ${item.meta.channels} · page ${page + 1}/${pages}`}</span>
          <button type="button" data-testid="atlas-next" disabled={page === pages - 1} onClick={() => goPage(page + 1)}>
            next ›
          </button>
        </div>
      )}
      <div class="atlas-grid" data-testid="atlas-grid">
        {channels.map((ch) => (
          <AtlasCard key={ch.channel} item={item} data={data} channel={ch} onOpen={() => setOpen(ch.channel)} />
        ))}
      </div>
      {open !== null && data.doc.channels[open] !== undefined && (
        <AtlasDetail
          item={item}
          data={data}
          channel={data.doc.channels[open]}
          onClose={() => setOpen(null)}
          onStep={(d) => setOpen((c) => (c === null ? null : Math.min(Math.max(c + d, 0), item.meta.channels - 1)))}
        />
      )}
    </div>
  );
}
