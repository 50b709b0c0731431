import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type TagInfo } from './api';
import { useDashboard } from './context';

/** Sum of the store versions of `runs`: changes whenever one of them got new data. */
export function useRunsVersion(runs: string[]): string {
  const { versions } = useDashboard();
  return runs.map((r) => `${versions[r] ?? 0}`).join(',');
}

/** `value`, but only after it stopped changing for `ms` milliseconds. */
export function useDebounced<T>(value: T, ms: number): T {
  const [out, setOut] = useState(value);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      setOut(value);
      return;
    }
    const t = window.setTimeout(() => setOut(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return out;
}

export interface TagGroup {
  tag: string;
  runs: string[];
}

/** Tags of `kind` over the selected runs, grouped by tag (sorted), live-refreshed. */
export function useTagGroups(kind: string): { groups: TagGroup[]; error: string | null; loading: boolean } {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const key = selected.join('\u0000');
  const [tags, setTags] = useState<TagInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (selected.length === 0) {
      setTags([]);
      return;
    }
    const ctl = new AbortController();
    api
      .tags(selected, kind, ctl.signal)
      .then((r) => {
        setTags(r.tags.filter((t) => t.kind === kind));
        setError(null);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(String(e));
      });
    return () => ctl.abort();
  }, [key, kind, version]);
  const groups = useMemo(() => {
    const byTag = new Map<string, string[]>();
    for (const t of tags ?? []) {
      const list = byTag.get(t.tag) ?? [];
      if (!list.includes(t.run)) list.push(t.run);
      byTag.set(t.tag, list);
    }
    const order = new Map(selected.map((r, i) => [r, i]));
    return [...byTag.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([tag, runs]) => ({
        tag,
        runs: runs.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0)),
      }));
  }, [tags, selected]);
  return { groups, error, loading: tags === null };
}

/** Width in CSS pixels of an element (0 until measured), tracked with a ResizeObserver. */
export function useWidth(ref: { current: HTMLElement | null }): number {
  const [width, setWidth] = useState(0);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el === null) return;
    const measure = () => {
      const w = Math.floor(el.clientWidth);
      if (w > 0) setWidth((old) => (Math.abs(old - w) >= 8 ? w : old));
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref]);
  return width;
}

/**
 * `value`, but while `hold` is true (e.g. a query for the previous value is still in flight)
 * changes wait: the latest passes once `hold` is false at a render, or `ms` after the last
 * change, whichever comes first. Intermediate values of a burst never pass; a change with
 * nothing on hold passes at once.
 */
export function useCoalesced<T>(value: T, ms: number, hold: boolean): T {
  const st = useRef({ out: value, seen: value, timer: 0 });
  const [, setTick] = useState(0);
  const s = st.current;
  if (!Object.is(value, s.seen)) {
    s.seen = value;
    window.clearTimeout(s.timer);
    if (hold) {
      s.timer = window.setTimeout(() => {
        s.out = s.seen;
        setTick((n) => n + 1);
      }, ms);
    } else s.out = value;
  } else if (!hold && !Object.is(s.out, s.seen)) {
    window.clearTimeout(s.timer);
    s.out = s.seen;
  }
  useEffect(() => () => window.clearTimeout(st.current.timer), []);
  return s.out;
}

/** A value kept with the key it was loaded for. Read under another key it is null, so a
 * view never shows the previous item's data for a new one (effects run a frame after the
 * render, and the new item's answer comes later still). `set(key, v)` stores v for key. */
export function useKeyed<T>(key: unknown): [T | null, (forKey: unknown, value: T | null) => void] {
  const [got, setGot] = useState<{ key: unknown; value: T | null } | null>(null);
  const set = useMemo(() => (forKey: unknown, value: T | null) => setGot({ key: forKey, value }), []);
  return [got !== null && Object.is(got.key, key) ? got.value : null, set];
}
