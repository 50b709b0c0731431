// Hash routing: "#/<tab>?runs=<a>,<b>" (each run name URI-encoded, so commas in names survive).
// A panel may add its own deep-link keys (`#/activations?run=…&layer=…`): `hashParams`.

export const TABS = [
  'runs',
  'scalars',
  'histograms',
  'images',
  'graph',
  'events',
  'attribution',
  'activations',
  'atlas',
  'weights',
  'attention',
  'projector',
] as const;
export type Tab = (typeof TABS)[number];

export interface Route {
  tab: Tab;
  /** null: no explicit selection (the app selects every run). */
  runs: string[] | null;
}

export function parseHash(hash: string): Route {
  const body = hash.replace(/^#\/?/, '');
  const q = body.indexOf('?');
  const path = q >= 0 ? body.slice(0, q) : body;
  const params = new URLSearchParams(q >= 0 ? body.slice(q + 1) : '');
  const tab = (TABS as readonly string[]).includes(path) ? (path as Tab) : 'scalars';
  const raw = params.get('runs');
  let runs: string[] | null = null;
  if (raw !== null) {
    runs = raw === '' ? [] : raw.split(',').map(safeDecode);
  }
  return { tab, runs };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function formatHash(route: Route): string {
  if (route.runs === null) return `#/${route.tab}`;
  return `#/${route.tab}?runs=${route.runs.map(encodeURIComponent).join(',')}`;
}

/** The query parameters of `hash` (a panel's own deep-link keys, e.g. `run` and `layer`). */
export function hashParams(hash: string): URLSearchParams {
  const q = hash.indexOf('?');
  return new URLSearchParams(q >= 0 ? hash.slice(q + 1) : '');
}

/** Set a panel's deep-link keys in the hash of `tab` (null removes one), keeping the others;
 * replaces the history entry and fires no hashchange. */
export function setHashParams(tab: Tab, values: Record<string, string | null>): void {
  const params = hashParams(location.hash);
  for (const [k, v] of Object.entries(values)) {
    if (v === null) params.delete(k);
    else params.set(k, v);
  }
  const query = params.toString();
  const hash = `#/${tab}${query ? `?${query}` : ''}`;
  if (hash !== location.hash) history.replaceState(history.state, '', hash);
}
