// The explore widget's transport: the dashboard API over the widget's comm channel. The
// notebook cannot frame the workbench server (its pages send `frame-ancestors 'self'`,
// THREATS D3) and may not reach it at all (a remote kernel), so the widget draws the
// dashboard's own components in the notebook page and their `api/...` requests travel as
// comm messages `{kind: "deepscope-api", id, method, path, body}` to the kernel, where
// `deepscope.notebook.explore_widget.ExploreWidget` checks the path against its allow-list
// and asks the explore server on loopback. The answer comes back as
// `{kind: "deepscope-api", id, status, headers}` with the body as one binary buffer, and the
// request's `fetch` resolves with a `Response` made of them.
//
// Each widget's bundle instance points its API URLs at `about:blank#deepscope-comm/<n>/api/...`
// (`setApiPrefix`): an address that loads nothing (no request leaves for the notebook's own
// server); one `fetch` hook (shared by every instance on the page) routes a URL to its
// widget's channel by `<n>`; an `<img>` whose `src` carries the prefix is drawn with the
// object URL of the bytes fetched that way (a preact `options.vnode` hook of this bundle
// keeps the unloadable URL off the element).

import { options, type VNode } from 'preact';
import { setApiPrefix } from '../api';

/** The part of anywidget's model the comm transport uses. */
export interface CommModel {
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
  on(event: string, callback: (content: unknown, buffers?: unknown[]) => void): void;
  off?(event?: string | null, callback?: ((content: unknown, buffers?: unknown[]) => void) | null): void;
}

const SCHEME = 'about:blank#deepscope-comm/';
const KIND = 'deepscope-api';

interface Pending {
  resolve: (r: Response) => void;
  reject: (e: unknown) => void;
}

interface Channel {
  model: CommModel;
  pending: Map<number, Pending>;
}

interface Registry {
  channels: Map<string, Channel>;
  next: number;
  seq: number;
  hooked: boolean;
}

const GLOBAL = globalThis as unknown as { __deepscopeComm?: Registry };

function registry(): Registry {
  GLOBAL.__deepscopeComm ??= { channels: new Map(), next: 0, seq: 0, hooked: false };
  return GLOBAL.__deepscopeComm;
}

/** The bytes of a comm buffer (an ArrayBuffer, or a DataView / typed array over one). */
function bytesOf(buf: unknown): Uint8Array<ArrayBuffer> {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
  return new Uint8Array(0);
}

function errorResponse(status: number, type: string, message: string): Response {
  return new Response(JSON.stringify({ error: { type, message } }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/** `fetch` of one `deepscope-comm:<n>/api/...` URL over channel `<n>`. */
function commFetch(url: string, init?: RequestInit): Promise<Response> {
  const rest = url.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const channel = registry().channels.get(slash < 0 ? '' : rest.slice(0, slash));
  if (channel === undefined) return Promise.resolve(errorResponse(503, 'Closed', 'this workbench widget is closed'));
  const path = rest.slice(slash + 1);
  const method = (init?.method ?? 'GET').toUpperCase();
  const body = typeof init?.body === 'string' ? init.body : null;
  const signal = init?.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
  const id = ++registry().seq;
  return new Promise<Response>((resolve, reject) => {
    const onAbort = () => {
      channel.pending.delete(id);
      channel.model.send({ kind: KIND, cancel: id });
      reject(signal?.reason ?? new DOMException('aborted', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    channel.pending.set(id, {
      resolve: (r) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(r);
      },
      reject,
    });
    channel.model.send({ kind: KIND, id, method, path, body });
  });
}

function hookFetch(): void {
  const reg = registry();
  if (reg.hooked) return;
  reg.hooked = true;
  const native = globalThis.fetch?.bind(globalThis);
  globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith(SCHEME)) return commFetch(url, init);
    if (native === undefined) return Promise.reject(new Error(`no network here: ${url}`));
    return native(input, init);
  };
}

// A transparent pixel: what an image shows until its bytes arrive over the channel.
const BLANK = 'data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAA=';
const ATTR = 'data-comm-src';
// object URLs of images already fetched, by comm URL (the oldest revoked past the cap)
const MAX_IMAGES = 256;
const images = new Map<string, string>();

function remember(src: string, url: string): void {
  images.set(src, url);
  while (images.size > MAX_IMAGES) {
    const [oldest, old] = images.entries().next().value as [string, string];
    images.delete(oldest);
    URL.revokeObjectURL(old);
  }
}

let vnodeHooked = false;

/** `<img src>` of a comm URL never reaches the element (a browser would try to load it): the
 * URL moves to `data-comm-src`, `src` is its fetched object URL when known, else a blank. */
function hookImages(): void {
  if (vnodeHooked) return;
  vnodeHooked = true;
  const previous = options.vnode;
  options.vnode = (vnode: VNode) => {
    if (vnode.type === 'img') {
      const props = vnode.props as Record<string, unknown>;
      const src = props.src;
      if (typeof src === 'string' && src.startsWith(SCHEME)) {
        props[ATTR] = src;
        props.src = images.get(src) ?? BLANK;
      }
    }
    previous?.(vnode);
  };
}

/** Feed every `<img data-comm-src>` under `root` the bytes behind its URL, fetched over the
 * channel (once per URL). */
function feedImages(root: Node): () => void {
  const feed = (img: HTMLImageElement) => {
    const src = img.getAttribute(ATTR);
    if (src === null) return;
    const known = images.get(src);
    if (known !== undefined) {
      if (img.getAttribute('src') !== known) img.src = known;
      return;
    }
    void fetch(src)
      .then(async (r) => (r.ok ? r.blob() : null))
      .then((blob) => {
        if (blob === null) return;
        const url = images.get(src) ?? URL.createObjectURL(blob);
        if (!images.has(src)) remember(src, url);
        if (img.getAttribute(ATTR) === src) img.src = url;
      })
      .catch(() => undefined);
  };
  const scan = (n: Node) => {
    if (n instanceof HTMLImageElement) feed(n);
    else if (n instanceof Element || n instanceof DocumentFragment) n.querySelectorAll<HTMLImageElement>(`img[${ATTR}]`).forEach(feed);
  };
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes') scan(r.target);
      else r.addedNodes.forEach(scan);
    }
  });
  observer.observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: [ATTR] });
  scan(root);
  return () => observer.disconnect();
}

/** Route this bundle instance's API requests through `model`'s comm channel and feed the
 * images under `root`; returns the teardown (pending requests fail as closed). */
export function connect(model: CommModel, root: Node): () => void {
  const reg = registry();
  const name = String(++reg.next);
  const channel: Channel = { model, pending: new Map() };
  reg.channels.set(name, channel);
  hookFetch();
  hookImages();
  setApiPrefix(`${SCHEME}${name}/`);
  const onMsg = (content: unknown, buffers?: unknown[]) => {
    const m = content as { kind?: unknown; id?: unknown; status?: unknown; headers?: Record<string, string> };
    if (m === null || typeof m !== 'object' || m.kind !== KIND || typeof m.id !== 'number') return;
    const p = channel.pending.get(m.id);
    if (p === undefined) return;
    channel.pending.delete(m.id);
    const status = typeof m.status === 'number' ? m.status : 502;
    const body = bytesOf(buffers?.[0]);
    // a Response body must be null for the statuses that carry none
    p.resolve(new Response(status === 204 || status === 304 ? null : body, { status, headers: m.headers ?? {} }));
  };
  model.on('msg:custom', onMsg);
  const unfeed = feedImages(root);
  return () => {
    unfeed();
    model.off?.('msg:custom', onMsg);
    reg.channels.delete(name);
    for (const p of channel.pending.values()) p.reject(new Error('the workbench widget was closed'));
    channel.pending.clear();
  };
}
