// Typed fetch wrappers over the dashboard HTTP API (docs/api.md).
// Every response is strict JSON; a non-finite float arrives as {"nonfinite": "nan"|"+inf"|"-inf"}
// and is decoded back to NaN / ±Infinity here, so panels only ever see numbers.

import type { Decoded } from './wire/decoded';
import type * as W from './wire/types';

// The answer types come from the wire schemas (`frontend/src/wire/types.ts`, generated from
// src/deepscope/views/wire.py), with every NonFinite already decoded to a number.
export type RunStatus = W.RunRow['status'];
export type RunInfo = W.RunRow;
export type TagInfo = W.TagRow;
/** [step, wallTime, value]; value may be NaN or ±Infinity. */
export type ScalarPoint = Decoded<W.Scalars['points'][number]>;
export type HistogramPoint = Decoded<W.HistogramRow>;
export type ImageInfo = W.BlobRow;
/** One logged attribution map (`AttributionResult.log`): an overlay PNG (or token-score JSON)
 * of one input, with the id of that input's image when one was logged. */
export type AttributionItem = W.AttributionRow;
export type TextInfo = W.TextRow;
export type EventInfo = W.EventRow;
export type Health = W.Health;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const NONFINITE: Record<string, number> = { nan: NaN, '+inf': Infinity, '-inf': -Infinity };

/** Replace every {"nonfinite": ...} object with the number it stands for. */
export function decodeNonfinite(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v !== null && typeof v === 'object') value[i] = decodeNonfinite(v);
    }
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (keys.length === 1 && keys[0] === 'nonfinite' && typeof obj.nonfinite === 'string') {
      const n = NONFINITE[obj.nonfinite];
      if (n !== undefined) return n;
    }
    for (const k of keys) {
      const v = obj[k];
      if (v !== null && typeof v === 'object') obj[k] = decodeNonfinite(v);
    }
  }
  return value;
}

type Query = Record<string, string | number | undefined | null | (string | number)[]>;

let apiPrefix = '';

/** Where `api/...` URLs point: '' (relative: the page's own server, or a snapshot) or a prefix
 * that a transport installed on `fetch` answers (the explore widget's comm channel,
 * `entries/comm.ts`). Set once per bundle instance, before anything renders. */
export function setApiPrefix(prefix: string): void {
  apiPrefix = prefix;
}

/** Build "api/<path>?a=1&run=x&run=y" (relative: the app is served at the server root). */
export function apiUrl(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, val] of Object.entries(query)) {
    if (val === undefined || val === null) continue;
    if (Array.isArray(val)) for (const v of val) params.append(key, String(v));
    else params.append(key, String(val));
  }
  const qs = params.toString();
  return `${apiPrefix}api/${path}${qs ? `?${qs}` : ''}`;
}

export async function getJson<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(apiUrl(path, query), { signal, credentials: 'same-origin' });
  const text = await resp.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, 'BadResponse', `unreadable answer from ${path} (${resp.status})`);
  }
  if (!resp.ok) {
    const err = (body as { error?: { type?: string; message?: string } }).error ?? {};
    throw new ApiError(resp.status, err.type ?? 'HttpError', err.message ?? `HTTP ${resp.status}`);
  }
  return decodeNonfinite(body) as T;
}

export const api = {
  health: (signal?: AbortSignal) => getJson<Health>('health', {}, signal),
  runs: (signal?: AbortSignal) =>
    getJson<W.Runs>('runs', { limit: 1000 }, signal),
  tags: (runs: string[], kind?: string, signal?: AbortSignal) =>
    getJson<W.Tags>('tags', { run: runs, kind }, signal),
  scalars: (
    run: string,
    tag: string,
    opts: { maxPoints: number; startStep?: number; endStep?: number },
    signal?: AbortSignal,
  ) =>
    getJson<Decoded<W.Scalars>>(
      'scalars',
      { run, tag, maxPoints: opts.maxPoints, startStep: opts.startStep, endStep: opts.endStep },
      signal,
    ),
  histograms: (run: string, tag: string, maxPoints: number, signal?: AbortSignal) =>
    getJson<Decoded<W.Histograms>>('histograms', { run, tag, maxPoints }, signal),
  images: (run: string, tag: string, signal?: AbortSignal) =>
    getJson<W.Images>('images', { run, tag }, signal),
  texts: (run: string, tag: string, signal?: AbortSignal) =>
    getJson<W.Texts>('text', { run, tag }, signal),
  events: (runs: string[], limit: number, signal?: AbortSignal) =>
    getJson<W.Events>('events', { run: runs, limit }, signal),
  attributions: (run: string, tag: string | undefined, signal?: AbortSignal) =>
    getJson<W.Attributions>('attributions', { run, tag }, signal),
};

type BlobResolver = (run: string, id: number | string) => string | undefined;
let blobResolver: BlobResolver | null = null;

/** Where blob URLs point without a server (the notebook widget and the static report set
 * it to their inlined `data:` URLs; `frontend/src/entries/offline.ts`). */
export function setBlobResolver(resolve: BlobResolver | null): void {
  blobResolver = resolve;
}

/** The inlined `data:` URL of blob `id` of `run` in a page without a server (a report or a
 * widget), or undefined (the dashboard, or a blob the snapshot left out). */
export function offlineBlobUrl(run: string, id: number | string): string | undefined {
  return blobResolver?.(run, id);
}

/** URL of a stored blob; built here from run + id, never taken from data as an href. */
export function blobUrl(run: string, id: number | string): string {
  return blobResolver?.(run, id) ?? apiUrl('blob', { run, id });
}
