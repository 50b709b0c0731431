// The main-thread side of the layout worker: one worker for the page, promises by request id.
import type { LayoutEngine, LayoutEdgeIn, LayoutNodeIn, LayoutResponse, LayoutResult } from './layoutTypes';
import { quickLayout } from './quickLayout';

/** Above this many nodes a level is laid out by `quickLayout` instead of ELK. */
export const ELK_MAX_NODES = 400;

type Pending = { resolve: (r: LayoutResult) => void; reject: (e: Error) => void };

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function getWorker(): Worker {
  if (worker !== null) return worker;
  const w = new Worker(new URL('./elk.worker.ts', import.meta.url), { type: 'module' });
  w.onmessage = (ev: MessageEvent<LayoutResponse>) => {
    const msg = ev.data;
    const p = pending.get(msg.id);
    if (p === undefined) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`layout failed: ${msg.error}`));
  };
  w.onerror = (ev) => {
    for (const p of pending.values()) p.reject(new Error(`layout worker error: ${ev.message}`));
    pending.clear();
    worker = null;
  };
  worker = w;
  return w;
}

export function layout(nodes: LayoutNodeIn[], edges: LayoutEdgeIn[]): Promise<LayoutResult> {
  const engine: LayoutEngine = nodes.length > ELK_MAX_NODES ? 'quick' : 'elk';
  const id = nextId++;
  let w: Worker;
  try {
    w = getWorker();
  } catch {
    // No worker (a restrictive embedding page): lay out on this thread with the fast engine.
    return Promise.resolve(quickLayout({ id, engine: 'quick', nodes, edges }));
  }
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.postMessage({ id, engine, nodes, edges });
  });
}
