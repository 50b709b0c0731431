// The dashboard API without a server: answers to `api/...` requests from a snapshot
// (`deepscope.notebook.snapshot`, `deepscope.views.embed`) that the page carries inline.
// The report and the notebook widget install it, then draw the dashboard's own panels,
// which fetch as usual: one codebase, no second renderer. A snapshot holds the server's
// answers keyed by `requestKey(path, params)` for the base requests (one run and tag, no
// paging) and every blob as a `data:` URL; parametric requests (a zoomed scalar range,
// `maxPoints`, `limit`, a `tag` or `step` filter, several runs) are answered from those
// here, with the server's rules (downsampling keeps the first, last and extreme points).

import { setBlobResolver } from '../api';
import { spriteBlobId, vectorsBlobId } from '../panels/projector/api';
import { ARRAY_CONTENT_TYPE } from '../wire/envelope';
import { type Matrix, matrixFromEnvelope, nearest, NeighborError } from './neighbors';

/** What a page carries: `deepscope.views.embed.Snapshot`. */
export interface Snapshot {
  format: 'deepscope-snapshot';
  version: 1;
  /** The panel to draw alone (a view kind, or "graph"), or null for the whole dashboard. */
  panel: string | null;
  /** The runs the panel draws (a widget) or that the dashboard lists. */
  runs: string[];
  /** Server answers by `requestKey`. */
  answers: Record<string, unknown>;
  /** Blob bytes as `data:` URLs by `blobKey(run, id)`. */
  blobs: Record<string, string>;
}

type Params = [string, string][];

interface Store {
  answers: Map<string, unknown>;
  blobs: Map<string, string>;
}

const GLOBAL = globalThis as unknown as { __deepscopeOffline?: Store };

/** The one store of the page: widgets of several results (each its own bundle instance in
 * some hosts) share it, their runs named apart by the kernel. */
function store(): Store {
  GLOBAL.__deepscopeOffline ??= { answers: new Map(), blobs: new Map() };
  return GLOBAL.__deepscopeOffline;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The canonical key of a request: `[path, [[name, value], ...]]` sorted, as JSON
 * (`deepscope.views.embed.request_key` writes the same). */
export function requestKey(path: string, params: Params): string {
  const sorted = [...params].sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1]));
  return JSON.stringify([path, sorted]);
}

export function blobKey(run: string, id: number | string): string {
  return `${run}\u0000${id}`;
}

/** Add a snapshot's answers and blobs to the page's store (later snapshots win). */
export function register(snap: Snapshot): void {
  const s = store();
  for (const [k, v] of Object.entries(snap.answers)) s.answers.set(k, v);
  for (const [k, v] of Object.entries(snap.blobs)) s.blobs.set(k, v);
}

export function isSnapshot(value: unknown): value is Snapshot {
  const p = value as Partial<Snapshot> | null;
  return (
    p !== null &&
    typeof p === 'object' &&
    p.format === 'deepscope-snapshot' &&
    p.version === 1 &&
    typeof p.answers === 'object' &&
    p.answers !== null &&
    typeof p.blobs === 'object' &&
    p.blobs !== null &&
    Array.isArray(p.runs)
  );
}

class Missing extends Error {}

function base(path: string, params: Params): unknown {
  const v = store().answers.get(requestKey(path, params));
  if (v === undefined) throw new Missing(`${path} of ${params.map((p) => p.join('=')).join(', ')} is not in this snapshot`);
  return v;
}

function num(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function latest<T>(items: T[], limit: number | undefined): T[] {
  return limit === undefined || items.length <= limit ? items : items.slice(items.length - limit);
}

type Point = [number, number, unknown];

/** Min/max buckets over the points in range that keep the first, the last, each bucket's
 * extremes and every non-finite marker (the server's contract, `store/downsample`). */
export function downsample(points: Point[], maxPoints: number): Point[] {
  if (points.length <= maxPoints || maxPoints < 4) return points;
  const buckets = Math.max(1, Math.floor((maxPoints - 2) / 2));
  const size = (points.length - 2) / buckets;
  const keep = new Set<number>([0, points.length - 1]);
  for (let b = 0; b < buckets; b++) {
    const lo = 1 + Math.floor(b * size);
    const hi = Math.min(points.length - 1, 1 + Math.floor((b + 1) * size));
    let min = -1;
    let max = -1;
    for (let i = lo; i < hi; i++) {
      const v = points[i][2];
      if (typeof v !== 'number') {
        keep.add(i);
        continue;
      }
      if (min < 0 || v < (points[min][2] as number)) min = i;
      if (max < 0 || v > (points[max][2] as number)) max = i;
    }
    if (min >= 0) keep.add(min);
    if (max >= 0) keep.add(max);
  }
  return [...keep].sort((a, b) => a - b).map((i) => points[i]);
}

function runs(q: URLSearchParams): string[] {
  return q.getAll('run');
}

function one(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (v === null) throw new Missing(`missing parameter ${name}`);
  return v;
}

type Handler = (q: URLSearchParams) => unknown;

const HANDLERS: Record<string, Handler> = {
  runs: (q) => {
    const all = base('runs', []) as { runs: { name: string }[] };
    const needle = (q.get('filter') ?? '').toLowerCase();
    const rows = all.runs.filter((r) => r.name.toLowerCase().includes(needle));
    const offset = num(q, 'offset') ?? 0;
    return { runs: rows.slice(offset, offset + (num(q, 'limit') ?? 500)), total: rows.length };
  },
  scalars: (q) => {
    const run = one(q, 'run');
    const tag = one(q, 'tag');
    const all = base('scalars', [['run', run], ['tag', tag]]) as { points: Point[] };
    const start = num(q, 'startStep');
    const end = num(q, 'endStep');
    const inRange = all.points.filter((p) => (start === undefined || p[0] >= start) && (end === undefined || p[0] <= end));
    return { run, tag, points: downsample(inRange, num(q, 'maxPoints') ?? 1000) };
  },
  histograms: (q) => {
    const run = one(q, 'run');
    const tag = one(q, 'tag');
    const all = base('histograms', [['run', run], ['tag', tag]]) as { histograms: unknown[] };
    const max = num(q, 'maxPoints') ?? 500;
    const h = all.histograms;
    if (h.length <= max) return { run, tag, histograms: h };
    const picked = Array.from({ length: max }, (_, i) => h[Math.round((i * (h.length - 1)) / Math.max(1, max - 1))]);
    return { run, tag, histograms: picked };
  },
  images: (q) => {
    const run = one(q, 'run');
    const tag = one(q, 'tag');
    const all = base('images', [['run', run], ['tag', tag]]) as { images: unknown[] };
    return { run, tag, images: latest(all.images, num(q, 'limit')) };
  },
  text: (q) => {
    const run = one(q, 'run');
    const tag = one(q, 'tag');
    const all = base('text', [['run', run], ['tag', tag]]) as { texts: unknown[] };
    return { run, tag, texts: latest(all.texts, num(q, 'limit')) };
  },
  tags: (q) => {
    const kind = q.get('kind');
    const rows: { kind: string }[] = [];
    for (const run of runs(q)) {
      const answer = store().answers.get(requestKey('tags', [['run', run]])) as { tags: { kind: string }[] } | undefined;
      for (const t of answer?.tags ?? []) if (kind === null || t.kind === kind) rows.push(t);
    }
    return { tags: rows };
  },
  events: (q) => {
    const events: unknown[] = [];
    for (const run of runs(q)) {
      const answer = store().answers.get(requestKey('events', [['run', run]])) as { events: unknown[] } | undefined;
      events.push(...latest(answer?.events ?? [], num(q, 'limit') ?? 200));
    }
    return { events };
  },
  attributions: (q) => {
    const run = one(q, 'run');
    const all = base('attributions', [['run', run]]) as { items: { tag: string }[] };
    const tag = q.get('tag');
    return { ...all, items: latest(all.items.filter((i) => tag === null || i.tag === tag), num(q, 'limit')) };
  },
  'graph/search': (q) => {
    const key: Params = [];
    for (const name of ['run', 'model', 'tag']) {
      const v = q.get(name);
      if (v !== null) key.push([name, v]);
    }
    const index = base('graph/search', key) as { matches: { text: string }[] };
    const needle = (q.get('q') ?? '').toLowerCase();
    if (needle === '') return { matches: [] };
    const limit = num(q, 'limit') ?? 50;
    const matches = [];
    for (const m of index.matches) {
      if (!m.text.includes(needle)) continue;
      const { text: _, ...rest } = m;
      matches.push(rest);
      if (matches.length >= limit) break;
    }
    return { matches };
  },
};

/** `views/<kind>`: the kind's items of a run, filtered by tag and step, the latest `limit`. */
function viewItems(kind: string, q: URLSearchParams): unknown {
  const run = one(q, 'run');
  const all = base(`views/${kind}`, [['run', run]]) as { items: { tag: string; step: number }[] };
  const tag = q.get('tag');
  const step = num(q, 'step');
  const items = all.items.filter((i) => (tag === null || i.tag === tag) && (step === undefined || i.step === step));
  return { ...all, items: latest(items, num(q, 'limit')) };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** A `data:` URL as a response (decoded here: some hosts' CSP forbid fetching data: URLs). */
function dataResponse(url: string, type?: string): Response {
  const comma = url.indexOf(',');
  const head = url.slice(5, comma);
  const mime = type ?? head.split(';')[0];
  return new Response(dataBytes(url), { status: 200, headers: { 'content-type': mime } });
}

function blob(q: URLSearchParams, type?: string): Response {
  const url = store().blobs.get(blobKey(one(q, 'run'), one(q, 'id')));
  if (url === undefined) throw new Missing(`blob ${q.get('id')} of run ${q.get('run')} is not in this snapshot`);
  return dataResponse(url, type);
}

const STATIC = 'is not available in a static report: open the run with `deepscope serve` for it';

/** `POST projector/project`: the recorded 2-D PCA of an embedding (the panel's default view);
 * other methods and 3-D answer an error the panel shows. */
function project(body: string): unknown {
  const req = JSON.parse(body) as { run?: unknown; tag?: unknown; step?: unknown; method?: unknown; dims?: unknown };
  const { run, tag, method, dims } = req;
  const step = req.step ?? 0;
  if (typeof run !== 'string' || typeof tag !== 'string' || typeof step !== 'number') throw new Missing('a projection needs run, tag and step');
  if (method !== 'pca' || dims !== 2) {
    const what = method === 'tsne' ? 't-SNE' : method === 'umap' ? 'UMAP' : `${String(dims)}-D ${String(method)}`;
    throw new Missing(`${what} ${STATIC}`);
  }
  return base('projector/project', [['run', run], ['tag', tag], ['step', String(step)], ['dims', '2'], ['method', 'pca']]);
}

/** Bytes of a `data:` URL. */
function dataBytes(url: string): Uint8Array<ArrayBuffer> {
  const comma = url.indexOf(',');
  return url.slice(5, comma).endsWith(';base64')
    ? Uint8Array.from(atob(url.slice(comma + 1)), (c) => c.charCodeAt(0))
    : new TextEncoder().encode(decodeURIComponent(url.slice(comma + 1)));
}

const matrices = new Map<string, Matrix>();

/** `projector/neighbors`: the k nearest points computed here from the embedding's vectors
 * in the snapshot (`entries/neighbors.ts`); a clear error when the report left them out. */
function neighbors(q: URLSearchParams): unknown {
  const run = one(q, 'run');
  const tag = one(q, 'tag');
  const step = num(q, 'step') ?? 0;
  const key = blobKey(run, vectorsBlobId(tag, step));
  let m = matrices.get(key);
  if (m === undefined) {
    const url = store().blobs.get(key);
    if (url === undefined) throw new Missing(`nearest neighbours of ${tag} (step ${step}) are not in this report (its vectors were over the size limit): open the run with \`deepscope serve\` for them`);
    const bytes = dataBytes(url);
    m = matrixFromEnvelope(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    matrices.set(key, m);
  }
  const index = num(q, 'index') ?? -1;
  return { index, neighbors: nearest(m, index, num(q, 'k') ?? 10, q.get('metric') ?? 'cosine') };
}

/** The answer to one `api/...` URL (`body`: a POST's body). */
export function answer(url: string, body?: string): Response {
  const rest = url.slice('api/'.length);
  const qi = rest.indexOf('?');
  const path = qi >= 0 ? rest.slice(0, qi) : rest;
  const q = new URLSearchParams(qi >= 0 ? rest.slice(qi + 1) : '');
  try {
    if (path === 'blob') return blob(q);
    if (path === 'projector/project') return json(project(body ?? '{}'));
    if (path === 'projector/cancel') return json({ cancelled: false });
    if (path === 'projector/neighbors') return json(neighbors(q));
    if (path === 'projector/sprite') {
      const url = store().blobs.get(blobKey(one(q, 'run'), spriteBlobId(one(q, 'tag'), num(q, 'step') ?? 0)));
      if (url === undefined) throw new Missing(`the thumbnails of this embedding are not in this report: open the run with \`deepscope serve\` for them`);
      return dataResponse(url, 'image/png');
    }
    if (path === 'projector/coords') {
      const key = one(q, 'key');
      const url = store().blobs.get(blobKey(one(q, 'run'), `projector:${key}`));
      if (url === undefined) throw new Missing(`projection ${key} is not in this snapshot`);
      return dataResponse(url, ARRAY_CONTENT_TYPE);
    }
    const view = /^views\/([^/]+)(\/array)?$/.exec(path);
    if (view !== null) {
      const kind = decodeURIComponent(view[1]);
      return view[2] !== undefined ? blob(q, ARRAY_CONTENT_TYPE) : json(viewItems(kind, q));
    }
    const handler = HANDLERS[path];
    if (handler !== undefined) return json(handler(q));
    return json(base(path, [...q.entries()]));
  } catch (e) {
    if (e instanceof Missing) return json({ error: { type: 'NotFound', message: e.message } }, 404);
    if (e instanceof NeighborError) return json({ error: { type: 'ProjectionError', message: e.message } }, 400);
    return json({ error: { type: 'Internal', message: String(e) } }, 500);
  }
}

let installed = false;

/** Answer `api/...` (and `data:`) requests of this bundle from the page's snapshots, and
 * point blob URLs (`<img src>`) at their inlined `data:` URLs. Other requests pass through. */
export function install(): void {
  setBlobResolver((run, id) => store().blobs.get(blobKey(run, id)));
  if (installed) return;
  installed = true;
  const native = globalThis.fetch?.bind(globalThis);
  globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith('api/')) {
      const body = typeof init?.body === 'string' ? init.body : undefined;
      return Promise.resolve(answer(url, body));
    }
    if (url.startsWith('data:')) return Promise.resolve(dataResponse(url));
    if (native === undefined) return Promise.reject(new Error(`no network here: ${url}`));
    return native(input, init);
  };
}
