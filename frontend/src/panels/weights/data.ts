// Where a tensor's figures and arrays come from: a run's logged `weights` items
// (`/api/views/weights`) or the model served by `deepscope view` / `deepscope diff --serve`
// (`/api/model/weights*`). Both give the same `TensorData`, so one set of components draws
// them. Also: per-layer and total statistics combined exactly from the tensor rows, and a
// graph node's value of a statistic (colour-by).

import { ApiError, apiUrl, blobUrl, getJson } from '../../api';
import { fetchArray } from '../../views/registry';
import { ARRAY_CONTENT_TYPE, decodeArray, type WireArray } from '../../wire/envelope';
import type {
  EsdSummary,
  ModelWeightsNode,
  ModelWeightsTable,
  WeightsDiffRow,
  WeightsItem,
  WeightsMeta,
} from '../../wire/types';

export type Part = 'heatmap' | 'filters' | 'delta';

export interface TensorData {
  name: string;
  meta: WeightsMeta;
  diff: WeightsDiffRow | null;
  parts: Part[];
  esd: () => Promise<EsdSummary | null>;
  array: (part: Part, signal?: AbortSignal) => Promise<WireArray>;
}

export function fromItem(run: string, item: WeightsItem): TensorData {
  const parts: Part[] = [];
  if (item.parts.heatmap !== null) parts.push('heatmap');
  if (item.parts.filters !== null) parts.push('filters');
  return {
    name: item.meta.entry,
    meta: item.meta,
    diff: null,
    parts,
    esd: () =>
      fetch(blobUrl(run, item.id), { credentials: 'same-origin' })
        .then((r) => r.json() as Promise<{ esd: EsdSummary | null }>)
        .then((d) => d.esd),
    array: (part, signal) => {
      const ref = part === 'filters' ? item.parts.filters : item.parts.heatmap;
      if (ref === null) return Promise.reject(new Error(`no ${part} logged`));
      return fetchArray('weights', run, ref.id, undefined, signal);
    },
  };
}

async function modelArray(name: string, part: Part, signal?: AbortSignal): Promise<WireArray> {
  const url = apiUrl('model/weights/array', { name, part });
  const resp = await fetch(url, { credentials: 'same-origin', signal });
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith(ARRAY_CONTENT_TYPE)) {
    throw new ApiError(resp.status, 'BadResponse', `expected an array from ${url} (${resp.status})`);
  }
  return decodeArray(await resp.arrayBuffer());
}

export function fromModel(t: ModelWeightsNode['tensors'][number]): TensorData {
  return {
    name: t.name,
    meta: t.meta,
    diff: t.diff,
    parts: t.parts,
    esd: () => Promise.resolve(t.esd),
    array: (part, signal) => modelArray(t.name, part, signal),
  };
}

/** The served model's tensors `query` (a node id, or names) as `TensorData`. */
export async function modelTensors(query: { node?: string; name?: string[] }, signal?: AbortSignal): Promise<TensorData[]> {
  const body = await getJson<ModelWeightsNode>('model/weights', query, signal);
  return body.tensors.map(fromModel);
}

export function modelTable(compute: boolean, signal?: AbortSignal): Promise<ModelWeightsTable> {
  return getJson<ModelWeightsTable>('model/weights/table', { compute: compute ? 1 : 0 }, signal);
}

/** Statistics of several tensors combined exactly (Chan's formula over finite values). */
export interface Combined {
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  absmax: number | null;
  zeros: number | null;
  l2: number | null;
  nan: number;
  inf: number;
}

export function combine(rows: WeightsMeta[]): Combined {
  let count = 0, finite = 0, mean = 0, m2 = 0, sumsq = 0, zeros = 0, nan = 0, inf = 0;
  let lo = Infinity, hi = -Infinity;
  for (const r of rows) {
    count += r.count;
    nan += r.nan;
    inf += r.inf;
    zeros += (r.zeros ?? 0) * r.count;
    const n = r.count - r.nan - r.inf;
    if (n <= 0 || r.mean === null || r.std === null) continue;
    const total = finite + n;
    const delta = r.mean - mean;
    mean += (delta * n) / total;
    m2 += r.std * r.std * n + (delta * delta * finite * n) / total;
    finite = total;
    sumsq += (r.l2 ?? 0) ** 2;
    lo = Math.min(lo, r.min ?? Infinity);
    hi = Math.max(hi, r.max ?? -Infinity);
  }
  const has = finite > 0;
  return {
    count,
    mean: has ? mean : null,
    std: has ? Math.sqrt(Math.max(m2, 0) / finite) : null,
    min: has ? lo : null,
    max: has ? hi : null,
    absmax: has ? Math.max(Math.abs(lo), Math.abs(hi)) : null,
    zeros: count ? zeros / count : null,
    l2: has ? Math.sqrt(sumsq) : null,
    nan,
    inf,
  };
}

export type NodeStat = 'norm' | 'alpha' | 'sparsity' | 'reldelta';
export const NODE_STATS: [NodeStat, string][] = [
  ['norm', 'weights: norm ‖W‖'],
  ['alpha', 'weights: alpha'],
  ['sparsity', 'weights: sparsity'],
  ['reldelta', 'weights: relative Δ'],
];

/** The tensor names a graph node stands for: its parameters, or (a group) every tensor under
 * its module path (`a/b` → names starting `a.b.`). */
export function nodeTensors(node: { id: string; kind: string; paramRefs: { name: string }[] }, names: Iterable<string>): string[] {
  if (node.kind !== 'group' || !node.id.startsWith('ns:')) return node.paramRefs.map((p) => p.name);
  const ns = node.id.slice(3);
  const prefix = ns === '' ? '' : `${ns.split('/').join('.')}.`;
  return [...names].filter((n) => n.startsWith(prefix));
}

/** A node's value of `stat` over its tensors (null when none has it): ‖W‖ of all its
 * parameters together, the mean alpha, the fraction of exact zeros, the largest ‖Δ‖/‖a‖. */
export function nodeValue(stat: NodeStat, names: string[], metas: Map<string, WeightsMeta>, diff: Map<string, WeightsDiffRow>): number | null {
  if (stat === 'reldelta') {
    const vals = names.map((n) => diff.get(n)?.relDelta).filter((v): v is number => typeof v === 'number');
    return vals.length ? Math.max(...vals) : null;
  }
  const rows = names.map((n) => metas.get(n)).filter((m): m is WeightsMeta => m !== undefined);
  if (rows.length === 0) return null;
  if (stat === 'alpha') {
    const a = rows.map((r) => r.alpha).filter((v): v is number => v !== null);
    return a.length ? a.reduce((x, y) => x + y, 0) / a.length : null;
  }
  const c = combine(rows);
  return stat === 'norm' ? c.l2 : c.zeros;
}

/** Short number for labels. */
export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toPrecision(4).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}
