// The sortable statistics table of a model's tensors, with a row per layer (module path) and
// a total row, combined exactly from the tensor rows; in a diff, the diff columns too.

import { useMemo, useState } from 'preact/hooks';
import type { WeightsDiffRow, WeightsMeta } from '../../wire/types';
import { combine, fmt, type Combined } from './data';

type Col = 'name' | 'count' | 'mean' | 'std' | 'min' | 'max' | 'absmax' | 'zeros' | 'l2' | 'alpha' | DiffCol;
type DiffCol = 'normDelta' | 'relDelta' | 'cosine' | 'maxAbs';
const BASE_COLS: [Col, string][] = [
  ['name', 'tensor'],
  ['count', 'count'],
  ['mean', 'mean'],
  ['std', 'std'],
  ['min', 'min'],
  ['max', 'max'],
  ['absmax', '|w| max'],
  ['zeros', 'zeros'],
  ['l2', 'L2'],
  ['alpha', 'alpha'],
];

// a diff: the figures of b and how each tensor moved from a
const DIFF_COLS: [Col, string][] = [
  ['name', 'tensor'],
  ['count', 'count'],
  ['l2', 'L2 (b)'],
  ['alpha', 'alpha (b)'],
  ['normDelta', '‖Δ‖'],
  ['relDelta', '‖Δ‖/‖a‖'],
  ['cosine', 'cos(a, b)'],
  ['maxAbs', 'max |Δ|'],
];

function isDiffCol(col: Col): col is DiffCol {
  return col === 'normDelta' || col === 'relDelta' || col === 'cosine' || col === 'maxAbs';
}

function value(m: WeightsMeta, d: WeightsDiffRow | undefined, col: Col): number | string | null {
  if (col === 'name') return m.entry;
  if (isDiffCol(col)) return d?.[col] ?? null;
  return m[col];
}

function cell(m: WeightsMeta | Combined, d: WeightsDiffRow | undefined, col: Col): string {
  if (col === 'name') return '';
  if (isDiffCol(col)) return fmt(d?.[col]);
  if (col === 'alpha') return 'alpha' in m ? fmt(m.alpha) : '';
  if (col === 'zeros') return m.zeros === null ? '—' : `${(m.zeros * 100).toFixed(1)}%`;
  if (col === 'count') return String(m.count);
  return fmt(m[col]);
}

export function StatsTable(props: {
  metas: WeightsMeta[];
  diff: Map<string, WeightsDiffRow> | null;
  selected: string | null;
  onSelect: (name: string) => void;
}) {
  const cols: [Col, string][] = props.diff ? DIFF_COLS : BASE_COLS;
  const [sort, setSort] = useState<{ col: Col; desc: boolean } | null>(null);
  const rows = useMemo(() => {
    const out = [...props.metas];
    if (sort === null) return out;
    const key = (m: WeightsMeta) => value(m, props.diff?.get(m.entry), sort.col);
    out.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;
      const c = typeof x === 'string' ? x.localeCompare(String(y)) : x - (y as number);
      return sort.desc ? -c : c;
    });
    return out;
  }, [props.metas, sort, props.diff]);
  const layers = useMemo(() => {
    const groups = new Map<string, WeightsMeta[]>();
    for (const m of props.metas) groups.set(m.layer, [...(groups.get(m.layer) ?? []), m]);
    return [...groups.entries()].map(([layer, ms]) => [layer, combine(ms)] as [string, Combined]);
  }, [props.metas]);
  const total = useMemo(() => combine(props.metas), [props.metas]);
  const sumRow = (label: string, c: Combined, testid: string) => (
    <tr key={`${testid}:${label}`} class="wt-sum" data-testid={testid}>
      {cols.map(([col]) => (
        <td key={col} class={col === 'name' ? '' : 'num'}>
          {col === 'name' ? label : isDiffCol(col) ? '' : cell(c, undefined, col)}
        </td>
      ))}
    </tr>
  );
  return (
    <table class="wt-table" data-testid="weights-table">
      <thead>
        <tr>
          {cols.map(([col, label]) => (
            <th key={col}>
              <button type="button" class="link" data-testid={`weights-sort-${col}`}
                onClick={() => setSort({ col, desc: sort?.col === col ? !sort.desc : col !== 'name' })}>
                {label}
                {sort?.col === col ? (sort.desc ? ' ▼' : ' ▲') : ''}
              </button>
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((m) => {
          const d = props.diff?.get(m.entry);
          return (
            <tr key={m.entry} data-testid="weights-row" data-tensor={m.entry}
              class={(m.entry === props.selected ? 'active ' : '') + (d && d.status !== 'same' ? 'wt-changed' : '')}
              onClick={() => props.onSelect(m.entry)}>
              <td title={`${m.shape.join('×')} ${m.dtype}`}>
                {m.entry}
                {d && d.status !== 'same' && <span class="wt-status"> {d.status}</span>}
              </td>
              {cols.slice(1).map(([col]) => (
                <td key={col} class="num">
                  {cell(m, d, col)}
                </td>
              ))}
            </tr>
          );
        })}
        {layers.length > 1 && layers.map(([layer, c]) => sumRow(`layer ${layer || '(top)'}`, c, 'weights-layer-row'))}
        {sumRow('total', total, 'weights-total-row')}
      </tbody>
    </table>
  );
}
