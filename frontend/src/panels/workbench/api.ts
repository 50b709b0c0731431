// The workbench routes (`/api/workbench*`, server/routes/workbench.py): the live model's inputs,
// which views apply to a node, one view computed on demand (joined and cached by the server),
// its binary parts and the progress of views still running.

import { ApiError, apiUrl, getJson } from '../../api';
import { ARRAY_CONTENT_TYPE, decodeArray, type WireArray } from '../../wire/envelope';
import type { WorkbenchInfo, WorkbenchJobs, WorkbenchTabs, WorkbenchView } from '../../wire/types';

export type ViewName = 'predict' | 'activations' | 'gradients' | 'gradcam' | 'saliency' | 'attention' | 'units';

let infoPromise: Promise<WorkbenchInfo | null> | null = null;

/** The served live model (null: this server has none; asked once per page). */
export function workbenchInfo(): Promise<WorkbenchInfo | null> {
  if (infoPromise === null) {
    infoPromise = getJson<WorkbenchInfo>('workbench').catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    });
  }
  return infoPromise;
}

export function fetchTabs(node: string, signal?: AbortSignal): Promise<WorkbenchTabs> {
  return getJson<WorkbenchTabs>('workbench/tabs', { node }, signal);
}

export interface ViewQuery {
  view: ViewName;
  node?: string;
  input: number;
  /** null: the predicted class. */
  target?: number | null;
}

export function fetchView(q: ViewQuery, signal?: AbortSignal): Promise<WorkbenchView> {
  return getJson<WorkbenchView>(
    'workbench/view',
    { view: q.view, node: q.node ?? '', input: q.input, target: q.target ?? -1 },
    signal,
  );
}

export function fetchJobs(signal?: AbortSignal): Promise<WorkbenchJobs> {
  return getJson<WorkbenchJobs>('workbench/jobs', {}, signal);
}

/** URL of a PNG part (or input thumbnail): no URL is taken from data, only keys. */
export function partUrl(key: string, part: string): string {
  return apiUrl('workbench/part', { key, part });
}

export function inputUrl(index: number): string {
  return apiUrl('workbench/input', { index });
}

export async function fetchPartArray(key: string, part: string, signal?: AbortSignal): Promise<WireArray> {
  const url = partUrl(key, part);
  const resp = await fetch(url, { credentials: 'same-origin', signal });
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith(ARRAY_CONTENT_TYPE)) {
    throw new ApiError(resp.status, 'BadResponse', `expected an array from ${url} (${resp.status})`);
  }
  return decodeArray(await resp.arrayBuffer());
}
