// What the notebook widget and the static report share: the embedded payload (one view
// kind's wire answer with its blobs inlined as data: URLs, built by
// `deepscope.views.embed`), assets that read those data: URLs, and the mount that draws the
// kind's panel component from the payload alone: no network, no server.

import { render } from 'preact';
import { decodeNonfinite } from '../api';
import { runColor } from '../colors';
import { AttributionCard, type AttributionAssets, type TokenDoc } from '../panels/attribution/AttributionCard';
import styles from '../styles.css?inline';
import type { ViewKindName, ViewResponses } from '../wire/types';

/** `deepscope.views.embed.EmbedPayload`: `view` is what `/api/views/<kind>` answers; `blobs`
 * maps a blob id to its bytes as a `data:` URL (image/png or application/json). */
export interface EmbedPayload<K extends ViewKindName = ViewKindName> {
  format: 'deepscope-embed';
  version: 1;
  kind: K;
  view: ViewResponses[K];
  blobs: Record<string, string>;
}

const PNG_PREFIX = 'data:image/png;base64,';
const JSON_PREFIX = 'data:application/json;base64,';

/** Assets that read the payload's inlined blobs (only PNG and JSON data: URLs are used). */
export function inlineAssets(blobs: Record<string, string>): AttributionAssets {
  const get = (id: number): string | undefined =>
    Object.prototype.hasOwnProperty.call(blobs, String(id)) ? blobs[String(id)] : undefined;
  return {
    image: (id) => {
      const url = get(id);
      return typeof url === 'string' && url.startsWith(PNG_PREFIX) ? url : null;
    },
    tokens: async (id) => {
      const url = get(id);
      if (typeof url !== 'string' || !url.startsWith(JSON_PREFIX)) throw new Error(`blob ${id} is not inlined JSON`);
      const bytes = Uint8Array.from(atob(url.slice(JSON_PREFIX.length)), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes)) as TokenDoc;
    },
  };
}

/** Check the envelope of a parsed payload (a JSON string or an object) and decode the
 * non-finite markers the strict JSON carries. */
export function readPayload(raw: unknown): EmbedPayload {
  const value: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  const p = value as Partial<EmbedPayload> | null;
  if (p === null || typeof p !== 'object' || p.format !== 'deepscope-embed' || p.version !== 1) {
    throw new Error('not a deepscope embed payload (format "deepscope-embed", version 1)');
  }
  if (typeof p.view !== 'object' || p.view === null || typeof p.blobs !== 'object' || p.blobs === null) {
    throw new Error('a deepscope embed payload needs "view" and "blobs" objects');
  }
  return decodeNonfinite(value) as EmbedPayload;
}

/** The panel of the payload's kind, in the dashboard's panel markup. */
export function EmbeddedPanel({ payload }: { payload: EmbedPayload }) {
  const assets = inlineAssets(payload.blobs);
  switch (payload.kind) {
    case 'attribution':
      return (
        <section class="panel" data-testid="panel-attribution">
          <AttributionCard view={payload.view as ViewResponses['attribution']} assets={assets} color={runColor(0)} />
        </section>
      );
    default:
      return <div class="error">this build cannot draw view kind {String(payload.kind)}</div>;
  }
}

/** The dashboard stylesheet as one <style> element (the bundles carry it as text). */
export function styleElement(doc: Document): HTMLStyleElement {
  const style = doc.createElement('style');
  style.setAttribute('data-deepscope', 'styles');
  style.textContent = styles;
  return style;
}

/** Draw `raw` (a payload) into `host` (cleared); a bad payload draws its error instead. */
export function mount(host: HTMLElement, raw: unknown): void {
  let payload: EmbedPayload;
  try {
    payload = readPayload(raw);
  } catch (e) {
    render(<div class="error" data-testid="embed-error">{String(e)}</div>, host);
    return;
  }
  render(<EmbeddedPanel payload={payload} />, host);
}
