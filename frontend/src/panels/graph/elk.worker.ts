/// <reference lib="webworker" />
// Layout worker: ELK layered (direction DOWN) for ordinary levels, `quickLayout` for huge ones.
// elk.bundled.js runs ELK's GWT code in this worker's thread (its FakeWorker); it needs no eval.
import ELK from 'elkjs/lib/elk.bundled.js';
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api';
import { quickLayout } from './quickLayout';
import {
  LAYER_GAP,
  LEVEL_PAD,
  NODE_GAP,
  type LayoutRequest,
  type LayoutResponse,
  type LayoutResult,
} from './layoutTypes';

const elk = new ELK();

const OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.edgeRouting': 'POLYLINE',
  'elk.padding': `[top=${LEVEL_PAD},left=${LEVEL_PAD},bottom=${LEVEL_PAD},right=${LEVEL_PAD}]`,
  'elk.spacing.nodeNode': String(NODE_GAP),
  'elk.layered.spacing.nodeNodeBetweenLayers': String(LAYER_GAP),
  'elk.layered.spacing.edgeNodeBetweenLayers': '12',
  'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
  'elk.layered.thoroughness': '3',
  'elk.randomSeed': '1',
};

async function elkLayout(req: LayoutRequest): Promise<LayoutResult> {
  const known = new Set(req.nodes.map((n) => n.id));
  const children: ElkNode[] = req.nodes.map((n) => ({
    id: n.id,
    width: n.w,
    height: n.h,
    layoutOptions:
      n.constraint === undefined ? undefined : { 'elk.layered.layering.layerConstraint': n.constraint },
  }));
  const edges: ElkExtendedEdge[] = [];
  const edgeIndex: number[] = [];
  req.edges.forEach((e, i) => {
    if (e.src === e.dst || !known.has(e.src) || !known.has(e.dst)) return;
    edges.push({ id: `e${i}`, sources: [e.src], targets: [e.dst] });
    edgeIndex.push(i);
  });
  const graph: ElkNode = { id: 'root', layoutOptions: OPTIONS, children, edges };
  const out: ElkNode = await elk.layout(graph);
  const pos = new Map((out.children ?? []).map((c) => [c.id, c]));
  const routes: number[][] = req.edges.map(() => []);
  (out.edges ?? []).forEach((e, k) => {
    const section = e.sections?.[0];
    if (section === undefined) return;
    const pts = [section.startPoint.x, section.startPoint.y];
    for (const b of section.bendPoints ?? []) pts.push(b.x, b.y);
    pts.push(section.endPoint.x, section.endPoint.y);
    routes[edgeIndex[k]] = pts;
  });
  return {
    width: out.width ?? 0,
    height: out.height ?? 0,
    x: req.nodes.map((n) => pos.get(n.id)?.x ?? 0),
    y: req.nodes.map((n) => pos.get(n.id)?.y ?? 0),
    edges: routes,
  };
}

self.onmessage = async (ev: MessageEvent<LayoutRequest>) => {
  const req = ev.data;
  const t0 = performance.now();
  let msg: LayoutResponse;
  try {
    const result = req.engine === 'elk' ? await elkLayout(req) : quickLayout(req);
    msg = { id: req.id, ok: true, result, ms: performance.now() - t0 };
  } catch (e) {
    msg = { id: req.id, ok: false, error: String(e) };
  }
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(msg);
};
