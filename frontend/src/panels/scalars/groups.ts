// Scalar tags in sections by prefix (the text before the first '/'), as TensorBoard groups
// them: the user's own sections first (tags without a prefix leading), then the sections
// that `run.watch` writes (tracking/watch.py), collapsed until opened.
import type { TagGroup } from '../../hooks';

/** Prefixes of the scalars `run.watch` logs, in the order their sections are shown. */
export const WATCH_PREFIXES = ['grad_norm', 'update_ratio', 'weight_norm', 'act'] as const;

export interface Section {
  /** '' for tags without a '/'. */
  prefix: string;
  title: string;
  watch: boolean;
  groups: TagGroup[];
}

export function prefixOf(tag: string): string {
  const i = tag.indexOf('/');
  return i <= 0 ? '' : tag.slice(0, i);
}

export function sections(groups: readonly TagGroup[]): Section[] {
  const byPrefix = new Map<string, TagGroup[]>();
  for (const g of groups) {
    const p = prefixOf(g.tag);
    const list = byPrefix.get(p) ?? [];
    list.push(g);
    byPrefix.set(p, list);
  }
  const watch = WATCH_PREFIXES as readonly string[];
  const rank = (p: string) => (watch.includes(p) ? 2 + watch.indexOf(p) : p === '' ? 0 : 1);
  return [...byPrefix.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([prefix, list]) => ({
      prefix,
      title: prefix === '' ? '(no prefix)' : prefix,
      watch: watch.includes(prefix),
      groups: list,
    }));
}
