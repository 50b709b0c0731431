import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { api, type Health, type RunInfo } from './api';
import { runColor } from './colors';
import { DashboardContext, type Dashboard } from './context';
import { formatHash, parseHash, TABS, type Route, type Tab } from './route';
import { subscribe } from './sse';
import { EventsPanel } from './panels/events/EventsPanel';
import { GraphPanel } from './panels/graph/GraphPanel';
import { HistogramsPanel } from './panels/histograms/HistogramsPanel';
import { ImagesPanel } from './panels/images/ImagesPanel';
import { ProjectorPanel } from './panels/projector/ProjectorPanel';
import { RunsPanel } from './panels/runlist/RunsPanel';
import { ScalarsPanel } from './panels/scalars/ScalarsPanel';
import { VIEW_PANELS } from './views/registry';
import { InputStrip } from './panels/workbench/InputStrip';
import { useWorkbenchInfo } from './panels/workbench/WorkbenchInspector';

const TAB_LABELS: Record<Tab, string> = {
  runs: 'Runs',
  scalars: 'Scalars',
  histograms: 'Histograms',
  images: 'Images',
  graph: 'Graph',
  events: 'Events',
  attribution: VIEW_PANELS.attribution.title,
  activations: VIEW_PANELS.activations.title,
  atlas: VIEW_PANELS.atlas.title,
  weights: VIEW_PANELS.weights.title,
  attention: VIEW_PANELS.attention.title,
  projector: 'Projector',
};

const RUNS_REFRESH_MS = 5000;

/** Tabs that draw the model served by `deepscope view` without any run. */
const MODEL_TABS: Tab[] = ['graph', 'weights'];
/** Tabs a live model (`--inputs`) answers from the graph inspector instead. */
const LIVE_TABS: Tab[] = ['activations', 'attribution', 'attention'];

function useRoute(): [Route, (r: Route) => void] {
  const [route, setRoute] = useState<Route>(() => parseHash(location.hash));
  useEffect(() => {
    const onHash = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const navigate = useCallback((r: Route) => {
    const hash = formatHash(r);
    if (hash !== location.hash) location.hash = hash;
    setRoute(r);
  }, []);
  return [route, navigate];
}

export function App() {
  const [route, navigate] = useRoute();
  const [health, setHealth] = useState<Health | null>(null);
  const [runs, setRuns] = useState<RunInfo[]>([]);
  const [runsLoaded, setRunsLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [versions, setVersions] = useState<Record<string, number>>({});
  const live = useWorkbenchInfo(); // deepscope.explore: the live model's input strip

  useEffect(() => {
    api
      .health()
      .then((h) => {
        setHealth(h);
        // Under `deepscope view` the served model is the point: open the graph unless the
        // URL already names a tab.
        if (h.mode === 'model' && !/^#\/\w/.test(location.hash)) {
          navigate({ tab: 'graph', runs: null });
        }
      })
      .catch((e: unknown) => setError(String(e)));
  }, [navigate]);

  useEffect(() => {
    let alive = true;
    const load = () =>
      api
        .runs()
        .then((r) => {
          if (!alive) return;
          setRuns((old) => (sameRuns(old, r.runs) ? old : r.runs));
          setRunsLoaded(true);
          setError(null);
        })
        .catch((e: unknown) => alive && setError(String(e)));
    void load();
    const timer = window.setInterval(load, RUNS_REFRESH_MS);
    return () => {
      alive = false;
      window.clearInterval(timer);
    };
  }, []);

  const names = useMemo(() => runs.map((r) => r.name), [runs]);
  // Runs named in the URL are used before /api/runs answers (one round trip fewer to the
  // first chart); once the list is known, unknown names drop out.
  const selected = useMemo(() => {
    if (route.runs === null) return names;
    return runsLoaded ? route.runs.filter((n) => names.includes(n)) : route.runs;
  }, [route.runs, names, runsLoaded]);
  const selectedKey = selected.join('\u0000');

  useEffect(
    () =>
      subscribe(selected, (u) =>
        setVersions((v) => (v[u.run] === u.version ? v : { ...v, [u.run]: u.version })),
      ),
    [selectedKey],
  );

  // `deepscope view MODEL` with no run: only the graph and the weights have something to
  // show; the other tabs say why and what would fill them, not "pick runs in the Runs tab"
  const modelOnly = health?.mode === 'model' && runsLoaded && runs.length === 0;
  const colorIndex = useMemo(() => new Map(names.map((n, i) => [n, i])), [names]);
  const dashboard: Dashboard = useMemo(
    () => ({
      runs,
      selected,
      setSelected: (next: string[]) => navigate({ tab: route.tab, runs: next }),
      colorOf: (run: string) =>
        runColor(colorIndex.get(run) ?? Math.max(0, selected.indexOf(run))),
      versions,
      modelMode: health?.mode === 'model',
    }),
    [runs, selected, navigate, route.tab, colorIndex, versions, health],
  );

  return (
    <DashboardContext.Provider value={dashboard}>
      <header class="topbar">
        <span class="brand">deepscope</span>
        <nav class="tabs" role="tablist">
          {TABS.map((tab) => (
            <button
              key={tab}
              type="button"
              role="tab"
              aria-selected={route.tab === tab}
              class={`tab${route.tab === tab ? ' active' : ''}${modelOnly && !MODEL_TABS.includes(tab) ? ' idle' : ''}`}
              title={modelOnly && !MODEL_TABS.includes(tab) ? 'Shows training runs: none is open' : undefined}
              data-testid={`tab-${tab}`}
              onClick={() => navigate({ tab, runs: route.runs })}
            >
              {TAB_LABELS[tab]}
            </button>
          ))}
        </nav>
        <span class="status-line">
          {error !== null ? (
            <span class="error">{error}</span>
          ) : (
            `${selected.length}/${runs.length} runs${health ? ` · v${health.version}` : ''}`
          )}
        </span>
      </header>
      <main class="panel-host">
        {live !== null && route.tab === 'graph' && <InputStrip info={live} />}
        {modelOnly && !MODEL_TABS.includes(route.tab) ? (
          <ModelOnly tab={route.tab} live={live !== null} />
        ) : (
          renderPanel(route.tab, selected, health)
        )}
      </main>
    </DashboardContext.Provider>
  );
}

/** What a run tab says under `deepscope view` when no run is open. */
function ModelOnly({ tab, live }: { tab: Tab; live: boolean }) {
  const link = (t: Tab) => <a href={formatHash({ tab: t, runs: null })}>{TAB_LABELS[t]}</a>;
  return (
    <div class="empty model-only" data-testid="model-only">
      <p>
        <b>{TAB_LABELS[tab]}</b> shows what training runs log, and this dashboard shows one model
        file (<code>deepscope view</code>) with no run.
      </p>
      <p>
        For this model: {link('graph')} (structure, shapes, parameters, MACs) and {link('weights')}{' '}
        (statistics, heatmaps, filters, spectra).
      </p>
      {LIVE_TABS.includes(tab) &&
        (live ? (
          <p>The model runs live here: click a node in the {link('graph')} for its activations, gradients and attribution.</p>
        ) : (
          <p>
            To see this model's activations, attribution and attention on your inputs, open it live:{' '}
            <code>deepscope view package.module:factory --inputs DATA</code>, then click a node in the graph.
          </p>
        ))}
      <p>
        For runs: log with <code>run = deepscope.init()</code> and <code>run.log(...)</code> in your training
        script, then open the folder with <code>deepscope serve LOGDIR</code>.
      </p>
    </div>
  );
}

function renderPanel(tab: Tab, selected: string[], health: Health | null) {
  switch (tab) {
    case 'runs':
      return <RunsPanel />;
    case 'scalars':
      return <ScalarsPanel />;
    case 'histograms':
      return <HistogramsPanel />;
    case 'images':
      return <ImagesPanel />;
    case 'events':
      return <EventsPanel />;
    case 'projector':
      return <ProjectorPanel />;
    case 'attribution':
    case 'activations':
    case 'atlas':
    case 'weights':
    case 'attention': {
      // view kinds (deepscope.views) draw through the one panel registry, keyed by kind
      const View = VIEW_PANELS[tab].component;
      return <View />;
    }
    case 'graph':
      return (
        <section class="panel panel-graph" data-testid="panel-graph">
          <GraphPanel runs={selected} modelMode={health?.mode === 'model'} />
        </section>
      );
  }
}

function sameRuns(a: RunInfo[], b: RunInfo[]): boolean {
  if (a.length !== b.length) return false;
  return a.every(
    (r, i) =>
      r.name === b[i].name &&
      r.status === b[i].status &&
      r.finished === b[i].finished &&
      JSON.stringify(r.config) === JSON.stringify(b[i].config),
  );
}
