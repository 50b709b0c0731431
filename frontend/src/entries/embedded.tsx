// What the notebook widget and the static report share: a snapshot of the dashboard API
// (`deepscope.views.embed`: the server's answers and every blob inlined), installed as the
// page's offline API (`offline.ts`), and the mount that draws the dashboard's own panel
// components over it: no network, no server, no second renderer. A view kind's panel comes
// from the one panel registry (`views/registry.ts`), so every registered kind draws here.

import type { ComponentType } from 'preact';
import { render } from 'preact';
import type { RunInfo } from '../api';
import { runColor } from '../colors';
import { DashboardContext, useDashboard, type Dashboard } from '../context';
import { EventsPanel } from '../panels/events/EventsPanel';
import { GraphPanel } from '../panels/graph/GraphPanel';
import { HistogramsPanel } from '../panels/histograms/HistogramsPanel';
import { ImagesPanel } from '../panels/images/ImagesPanel';
import { ScalarsPanel } from '../panels/scalars/ScalarsPanel';
import 'uplot/dist/uPlot.min.css';
import '../styles.css';
import { viewPanel } from '../views/registry';
import { blobKey, install, isSnapshot, register, requestKey, type Snapshot } from './offline';

// Every stylesheet of the bundle as text: the embed builds move the CSS the modules import
// into this constant (`inlineCss` in vite.config.ts); the host page decides where it goes.
declare const __deepscopeCss: string | undefined;
export const BUNDLED_CSS: string = typeof __deepscopeCss === 'string' ? __deepscopeCss : '';

/** The first embed payload (`deepscope-embed` version 1: one view kind's answer with its
 * blobs), still read: it is a snapshot of one run and one kind. */
interface EmbedV1 {
  format: 'deepscope-embed';
  version: 1;
  kind: string;
  view: { run: string };
  blobs: Record<string, string>;
}

/** A snapshot from `raw` (a JSON string or an object), or an Error saying what is wrong. */
export function readSnapshot(raw: unknown): Snapshot {
  const value: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  if (isSnapshot(value)) return value;
  const v1 = value as Partial<EmbedV1> | null;
  if (v1 !== null && typeof v1 === 'object' && v1.format === 'deepscope-embed' && v1.version === 1) {
    if (typeof v1.view !== 'object' || v1.view === null || typeof v1.blobs !== 'object' || v1.blobs === null) {
      throw new Error('a deepscope embed payload needs "view" and "blobs" objects');
    }
    const run = String(v1.view.run);
    const blobs: Record<string, string> = {};
    for (const [id, url] of Object.entries(v1.blobs)) blobs[blobKey(run, id)] = url;
    return {
      format: 'deepscope-snapshot',
      version: 1,
      panel: String(v1.kind),
      runs: [run],
      answers: { [requestKey(`views/${String(v1.kind)}`, [['run', run]])]: v1.view },
      blobs,
    };
  }
  throw new Error('not a deepscope snapshot (format "deepscope-snapshot", version 1)');
}

function Graph() {
  return (
    <section class="panel panel-graph" data-testid="panel-graph">
      <GraphPanel runs={useDashboard().selected} modelMode={false} />
    </section>
  );
}

// panels that are not view kinds, by the dashboard's tab name
const PLAIN_PANELS: Record<string, ComponentType> = {
  scalars: ScalarsPanel,
  histograms: HistogramsPanel,
  images: ImagesPanel,
  events: EventsPanel,
  graph: Graph,
};

function runRows(snap: Snapshot): RunInfo[] {
  const listed = snap.answers[requestKey('runs', [])] as { runs?: RunInfo[] } | undefined;
  const rows = listed?.runs ?? [];
  return snap.runs.map(
    (name) => rows.find((r) => r.name === name) ?? { name, status: 'finished', created: 0, heartbeat: 0, finished: 0, config: {} },
  );
}

/** One panel of `snap` (a view kind's, or a plain tab's) over its runs. */
export function SnapshotPanel({ snap, generation }: { snap: Snapshot; generation: number }) {
  const name = snap.panel ?? '';
  const Panel = viewPanel(name)?.component ?? PLAIN_PANELS[name];
  if (Panel === undefined) {
    return (
      <div class="error" data-testid="embed-error">
        this build cannot draw {name === '' ? 'a whole dashboard here' : `view kind ${name}`}
      </div>
    );
  }
  const dashboard: Dashboard = {
    runs: runRows(snap),
    selected: snap.runs,
    setSelected: () => {},
    colorOf: (run) => runColor(Math.max(0, snap.runs.indexOf(run))),
    // a new payload for the same runs re-fetches: the panels watch the run versions
    versions: Object.fromEntries(snap.runs.map((r) => [r, generation])),
    modelMode: false,
  };
  return (
    <DashboardContext.Provider value={dashboard}>
      <Panel />
    </DashboardContext.Provider>
  );
}

/** The stylesheets as one <style> element; `scoped` rewrites the page-wide selectors
 * (`:root`, `body`) for a shadow root, so a widget neither leaks nor takes styles. */
export function styleElement(doc: Document, scoped = false): HTMLStyleElement {
  const style = doc.createElement('style');
  style.setAttribute('data-deepscope', 'styles');
  style.textContent = scoped ? BUNDLED_CSS.replace(/:root\b/g, ':host').replace(/(^|[},\s])body\s*\{/g, '$1:host {') : BUNDLED_CSS;
  return style;
}

let generation = 0;

/** Draw `raw` (a snapshot) into `host` with `whole` as the dashboard when the snapshot
 * names no panel; a bad snapshot draws its error instead. */
export function mount(host: Element | ShadowRoot, raw: unknown, whole?: ComponentType): void {
  let snap: Snapshot;
  try {
    snap = readSnapshot(raw);
  } catch (e) {
    render(<div class="error" data-testid="embed-error">{String(e)}</div>, host);
    return;
  }
  install();
  register(snap);
  generation += 1;
  if (snap.panel === null && whole !== undefined) {
    const Whole = whole;
    render(<Whole />, host);
    return;
  }
  render(<SnapshotPanel snap={snap} generation={generation} />, host);
}
