// Hash routing: "#/<tab>?runs=<a>,<b>" (each run name URI-encoded, so commas in names survive).

export const TABS = [
  'runs',
  'scalars',
  'histograms',
  'images',
  'graph',
  'events',
  'attribution',
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
