// Training overlays on the graph (issue #18): the per-layer series a run's `run.watch`
// recorded (`/api/overlays`) and one step's values on node ids (`/api/overlays/values`),
// cached per (run, tag, series, step) with the steps either side fetched ahead, so moving
// the scrubber recolours from memory.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { getJson } from '../../api';
import { formatHash, parseHash } from '../../route';
import type { OverlayBadge, Overlays, OverlayValues } from '../../wire/types';

export type { OverlayBadge };

/** Series values by node id (groups included); NaN / ±Infinity already decoded. */
export type NodeValues = Map<string, number | null>;

export interface StepValues {
  /** The logged step the values come from (latest at or before the asked one), or null. */
  step: number | null;
  values: NodeValues;
}

const PREFETCH = 1;
const MAX_CACHED = 400;

export function useOverlayIndex(run: string | null, tag: string | null, version: number): Overlays | null {
  const [index, setIndex] = useState<Overlays | null>(null);
  useEffect(() => {
    setIndex(null);
    if (run === null) return;
    const ctl = new AbortController();
    getJson<Overlays>('overlays', { run, tag: tag ?? undefined }, ctl.signal)
      .then(setIndex)
      // no graph or no overlays: an empty index (the colour menu simply has no series)
      .catch(() => !ctl.signal.aborted && setIndex({ run, steps: [], series: [], badges: [] }));
    return () => ctl.abort();
  }, [run, tag, version]);
  return index;
}

/** Values of one series at `step` (null: not loaded yet). A step already fetched is
 * answered in the same render (no effect, no second render), and the last values shown stay
 * while the next step loads, so the graph never flashes neutral. */
export function useOverlayValues(
  run: string | null,
  tag: string | null,
  series: string | null,
  step: number | null,
  steps: number[],
): StepValues | null {
  const cache = useRef(new Map<string, Promise<StepValues>>());
  const resolved = useRef(new Map<string, StepValues>());
  const last = useRef<StepValues | null>(null);
  const [, setArrived] = useState(0);
  const base = `${run ?? ''}\u0000${tag ?? ''}\u0000${series ?? ''}`;
  const baseRef = useRef(base);
  if (baseRef.current !== base) {
    baseRef.current = base;
    cache.current.clear();
    resolved.current.clear();
    last.current = null;
  }
  const keyOf = (s: number) => `${base}\u0000${s}`;
  const load = (s: number): Promise<StepValues> => {
    const key = keyOf(s);
    let p = cache.current.get(key);
    if (p === undefined) {
      if (cache.current.size >= MAX_CACHED) {
        const oldest = cache.current.keys().next().value as string;
        cache.current.delete(oldest);
        resolved.current.delete(oldest);
      }
      p = getJson<OverlayValues>('overlays/values', { run: run ?? '', tag: tag ?? undefined, series: series ?? '', step: s }).then(
        (r) => {
          const v = { step: r.step, values: new Map(Object.entries(r.values) as [string, number | null][]) };
          if (cache.current.get(key) === p) resolved.current.set(key, v);
          return v;
        },
      );
      cache.current.set(key, p);
      p.catch(() => cache.current.delete(key));
    }
    return p;
  };
  useEffect(() => {
    if (run === null || series === null || step === null) return;
    let alive = true;
    if (!resolved.current.has(keyOf(step))) {
      load(step)
        .then(() => alive && setArrived((n) => n + 1))
        .catch(() => undefined);
    }
    const at = steps.indexOf(step);
    for (let d = 1; d <= PREFETCH && at >= 0; d++) {
      for (const k of [at + d, at - d]) if (k >= 0 && k < steps.length) load(steps[k]).catch(() => undefined);
    }
    return () => {
      alive = false;
    };
  }, [base, step]);
  if (run === null || series === null) return null;
  const hit = step === null ? undefined : resolved.current.get(keyOf(step));
  if (hit !== undefined) last.current = hit;
  return last.current;
}

/** Badges shown at `step`: events at or before it, by node id (a node can carry several). */
export function badgesAt(index: Overlays | null, step: number | null): Map<string, OverlayBadge[]> {
  const out = new Map<string, OverlayBadge[]>();
  if (index === null) return out;
  for (const b of index.badges) {
    if (step !== null && b.step > step) continue;
    for (const id of b.nodes) {
      const list = out.get(id);
      if (list === undefined) out.set(id, [b]);
      else list.push(b);
    }
  }
  return out;
}

export function useBadges(index: Overlays | null, step: number | null): Map<string, OverlayBadge[]> {
  return useMemo(() => badgesAt(index, step), [index, step]);
}

/** Switch the dashboard to the graph tab, keeping the selected runs. */
export function openGraphTab(): void {
  const r = parseHash(location.hash);
  location.hash = formatHash({ tab: 'graph', runs: r.runs });
}
