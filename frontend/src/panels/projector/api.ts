// The projector's HTTP API (`/api/projector/*`, served by deepscope.server): the logged
// embeddings of a run, their columns, the sprite atlas, server-side projections (PCA, t-SNE,
// UMAP: queued on a worker, progress over SSE, coordinates as a binary array envelope), and
// nearest neighbours in the original space.

import { ApiError, apiUrl, getJson, offlineBlobUrl } from '../../api';
import { ARRAY_CONTENT_TYPE, decodeArray } from '../../wire/envelope';

export type ColumnType = 'category' | 'number' | 'text';
export type Method = 'pca' | 'tsne' | 'umap';
export type ProjectionState = 'queued' | 'running' | 'done' | 'error' | 'cancelled';

export interface ColumnInfo {
  name: string;
  type: ColumnType;
}

export interface SpriteInfo {
  /** [width, height] of one thumbnail in pixels. */
  tile: [number, number];
  cols: number;
  count: number;
}

export interface EmbeddingInfo {
  tag: string;
  step: number;
  n: number;
  dim: number;
  columns: ColumnInfo[];
  sprite: SpriteInfo | null;
}

export type Column =
  | { name: string; type: 'category'; categories: string[]; codes: number[] }
  | { name: string; type: 'number'; values: (number | null)[] }
  | { name: string; type: 'text'; values: string[] };

export interface ProjectAnswer {
  key: string;
  state: ProjectionState;
  progress: number;
  message?: string;
}

export interface Neighbor {
  index: number;
  distance: number;
}

export interface ProjectRequest {
  run: string;
  tag: string;
  step: number;
  method: Method;
  dims: 2 | 3;
  params: Record<string, number>;
}

export const projectorApi = {
  embeddings: (run: string, signal?: AbortSignal) =>
    getJson<{ embeddings: EmbeddingInfo[] }>('projector/embeddings', { run }, signal),
  columns: (run: string, tag: string, step: number, signal?: AbortSignal) =>
    getJson<{ columns: Column[] }>('projector/columns', { run, tag, step }, signal),
  neighbors: (
    run: string,
    tag: string,
    step: number,
    index: number,
    k: number,
    metric: 'cosine' | 'euclidean',
    signal?: AbortSignal,
  ) =>
    getJson<{ index: number; neighbors: Neighbor[] }>(
      'projector/neighbors',
      { run, tag, step, index, k, metric },
      signal,
    ),
  project: (req: ProjectRequest, signal?: AbortSignal) => postJson<ProjectAnswer>('projector/project', req, signal),
  cancel: (run: string, key: string) => postJson<{ cancelled: boolean }>('projector/cancel', { run, key }),
};

/** The snapshot blob id of an embedding's sprite atlas in a report or widget
 * (`deepscope.notebook.snapshot.sprite_blob_id` writes the same). */
export function spriteBlobId(tag: string, step: number): string {
  return `projector:sprite:${step}:${tag}`;
}

/** The snapshot blob id of an embedding's vectors, which the offline API answers
 * `projector/neighbors` from (`deepscope.notebook.snapshot.vectors_blob_id`). */
export function vectorsBlobId(tag: string, step: number): string {
  return `projector:vectors:${step}:${tag}`;
}

/** URL of the sprite atlas (built here from run/tag/step; no URL is taken from data): the
 * server's route, or in a report/widget the atlas inlined in the page's snapshot. */
export function spriteUrl(run: string, tag: string, step: number): string {
  return offlineBlobUrl(run, spriteBlobId(tag, step)) ?? apiUrl('projector/sprite', { run, tag, step });
}

/** A same-origin JSON POST (the server refuses a foreign Origin; the token cookie rides along). */
export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(apiUrl(path), {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  const text = await resp.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, 'BadResponse', `unreadable answer from ${path} (${resp.status})`);
  }
  if (!resp.ok) {
    const err = (parsed as { error?: { type?: string; message?: string } }).error ?? {};
    throw new ApiError(resp.status, err.type ?? 'HttpError', err.message ?? `HTTP ${resp.status}`);
  }
  return parsed as T;
}

export interface Coords {
  /** N x dims, row-major; a NaN row is a point the server dropped (NaN/Inf input). */
  data: Float32Array;
  n: number;
  dims: number;
  /** bytes on the wire (the envelope included). */
  bytes: number;
}

/** The coordinates of projection `key`, or null while they are not ready (404). */
export async function fetchCoords(run: string, key: string, partial: boolean, signal?: AbortSignal): Promise<Coords | null> {
  const url = apiUrl('projector/coords', { run, key, partial: partial ? 1 : undefined });
  const resp = await fetch(url, { credentials: 'same-origin', signal });
  if (resp.status === 404) return null;
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith(ARRAY_CONTENT_TYPE)) {
    let message = `expected coordinates from the server (${resp.status})`;
    try {
      const body = (await resp.json()) as { error?: { message?: string } };
      if (body.error?.message) message = body.error.message;
    } catch {
      // not JSON: keep the generic message
    }
    throw new ApiError(resp.status, 'BadResponse', message);
  }
  const buf = await resp.arrayBuffer();
  const arr = decodeArray(buf);
  if (arr.dtype !== 'float32' || arr.shape.length !== 2) {
    throw new ApiError(resp.status, 'BadResponse', `coordinates must be float32 N x dims, got ${arr.dtype} ${arr.shape.join('x')}`);
  }
  return { data: arr.data as Float32Array, n: arr.shape[0], dims: arr.shape[1], bytes: buf.byteLength };
}
