// One registry of panel components keyed by view kind (`deepscope.views.registry`): the
// server names a kind's panel in `/api/views` (`panel`), the frontend looks it up here.
// Adding a kind: register its Python `ViewKind`, regenerate `wire/types.ts`, add a row.

import type { ComponentType } from 'preact';
import { ApiError, apiUrl, getJson } from '../api';
import { ActivationsPanel } from '../panels/activations/ActivationsPanel';
import { AtlasPanel } from '../panels/atlas/AtlasPanel';
import { AttentionPanel } from '../panels/attention/AttentionPanel';
import { AttributionPanel } from '../panels/attribution/AttributionPanel';
import { WeightsPanel } from '../panels/weights/WeightsPanel';
import { ARRAY_CONTENT_TYPE, decodeArray, type WireArray } from '../wire/envelope';
import type { ViewKindName, ViewResponses } from '../wire/types';

export interface ViewPanel {
  /** The tab label. */
  title: string;
  /** The component that draws the kind; it reads its items with `fetchView`. */
  component: ComponentType;
}

export const VIEW_PANELS: Record<ViewKindName, ViewPanel> = {
  activations: { title: 'Activations', component: ActivationsPanel },
  atlas: { title: 'Atlas', component: AtlasPanel },
  attention: { title: 'Attention', component: AttentionPanel },
  attribution: { title: 'Attribution', component: AttributionPanel },
  // drawn inside the Activations panel (the table of the layer shown)
  unit_stats: { title: 'Activations', component: ActivationsPanel },
  weights: { title: 'Weights', component: WeightsPanel },
};

/** The panel of a kind, or undefined for a kind this build does not know. */
export function viewPanel(kind: string): ViewPanel | undefined {
  return (VIEW_PANELS as Record<string, ViewPanel | undefined>)[kind];
}

/** `/api/views/<kind>`: the kind's items of one run (of `tag`/`step` when given), typed by
 * the kind's generated wire schema. Array parts: `fetchArray(kind, run, part.id)`. */
export function fetchView<K extends ViewKindName>(
  kind: K,
  run: string,
  opts: { tag?: string; step?: number; limit?: number } = {},
  signal?: AbortSignal,
): Promise<ViewResponses[K]> {
  return getJson<ViewResponses[K]>(`views/${encodeURIComponent(kind)}`, { run, ...opts }, signal);
}

/** One array part (`/api/views/<kind>/array`, by id: no URL is taken from data), decoded in
 * place over the response's buffer; `maxSize` asks the server to downsample larger maps. */
export async function fetchArray(
  kind: ViewKindName,
  run: string,
  id: number,
  maxSize?: number,
  signal?: AbortSignal,
): Promise<WireArray> {
  const url = apiUrl(`views/${encodeURIComponent(kind)}/array`, { run, id, maxSize });
  const resp = await fetch(url, { credentials: 'same-origin', signal });
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith(ARRAY_CONTENT_TYPE)) {
    throw new ApiError(resp.status, 'BadResponse', `expected an array from ${url} (${resp.status})`);
  }
  return decodeArray(await resp.arrayBuffer());
}
