// The head view: the query tokens in a left column, the key tokens in a right column, one
// SVG line per (query, key) pair weighted by its attention (opacity and width), one colour
// per head. Hovering a token keeps only its lines. Pairs under `MIN_WEIGHT` are not drawn,
// and the threshold rises until at most `MAX_LINES` lines remain.

import { useMemo, useState } from 'preact/hooks';
import { at, fmt, type Matrix } from './data';

export const ROW_PX = 20;
const MIN_WEIGHT = 0.02;
const MAX_LINES = 6000;
const LEFT_X = 150;
const RIGHT_X = 390;
const GAP = 8;
export const HEAD_COLORS = [
  '#2563eb', '#dc2626', '#16a34a', '#d97706', '#9333ea', '#0891b2',
  '#db2777', '#65a30d', '#4f46e5', '#ea580c', '#0d9488', '#7c3aed',
];

export interface HeadLines {
  head: number;
  color: string;
  m: Matrix;
}

interface Line {
  h: number;
  q: number;
  k: number;
  w: number;
  color: string;
}

function lines(heads: HeadLines[]): Line[] {
  let floor = MIN_WEIGHT;
  for (;;) {
    const out: Line[] = [];
    for (const { head, color, m } of heads) {
      for (let q = 0; q < m.rows; q++) {
        for (let k = 0; k < m.cols; k++) {
          const w = at(m, q, k);
          if (w >= floor) out.push({ h: head, q, k, w, color });
        }
      }
    }
    if (out.length <= MAX_LINES || floor >= 0.5) return out;
    floor *= 2;
  }
}

export function HeadView({ heads, queryLabels, keyLabels }: { heads: HeadLines[]; queryLabels: string[]; keyLabels: string[] }) {
  const [focus, setFocus] = useState<{ side: 'q' | 'k'; i: number } | null>(null);
  const all = useMemo(() => lines(heads), [heads]);
  const rows = Math.max(queryLabels.length, keyLabels.length);
  const height = rows * ROW_PX + 8;
  const y = (i: number) => 4 + (i + 0.5) * ROW_PX;
  const shown = focus === null ? all : all.filter((l) => (focus.side === 'q' ? l.q === focus.i : l.k === focus.i));
  const label = (s: string) => (s.length > 18 ? `${s.slice(0, 17)}…` : s);
  const tokenText = (side: 'q' | 'k', i: number, text: string) => {
    const active = focus !== null && focus.side === side && focus.i === i;
    return (
      <text
        key={`${side}${i}`}
        x={side === 'q' ? LEFT_X - GAP : RIGHT_X + GAP}
        y={y(i)}
        dy="0.35em"
        text-anchor={side === 'q' ? 'end' : 'start'}
        class={active ? 'attn-token active' : 'attn-token'}
        data-testid={side === 'q' ? 'attn-query-token' : 'attn-key-token'}
        data-index={i}
        onMouseEnter={() => setFocus({ side, i })}
        onMouseLeave={() => setFocus(null)}
      >
        <title>{`${side === 'q' ? 'query' : 'key'} ${i}: ${text}`}</title>
        {label(text)}
      </text>
    );
  };
  return (
    <div class="attn-headview" data-testid="attn-headview">
      <div class="muted">
        queries (left) attend to keys (right); hover a token for its lines only ·{' '}
        {focus === null
          ? `${all.length} lines ≥ ${fmt(all.reduce((m, l) => Math.min(m, l.w), 1))}`
          : `${shown.length} lines of ${focus.side === 'q' ? 'query' : 'key'} ${focus.i}: ${shown
              .slice()
              .sort((a, b) => b.w - a.w)
              .slice(0, 3)
              .map((l) => `${focus.side === 'q' ? l.k : l.q} (${fmt(l.w)})`)
              .join(', ')}`}
      </div>
      <svg width={RIGHT_X + 170} height={height} class="attn-headview-svg" data-testid="attn-headview-svg">
        <g class="attn-lines">
          {shown.map((l) => (
            <line
              key={`${l.h}-${l.q}-${l.k}`}
              x1={LEFT_X}
              y1={y(l.q)}
              x2={RIGHT_X}
              y2={y(l.k)}
              stroke={l.color}
              stroke-opacity={Math.min(1, l.w)}
              stroke-width={1 + 2.5 * l.w}
              data-q={l.q}
              data-k={l.k}
              data-head={l.h}
              data-w={l.w}
            />
          ))}
        </g>
        {queryLabels.map((t, i) => tokenText('q', i, t))}
        {keyLabels.map((t, i) => tokenText('k', i, t))}
      </svg>
    </div>
  );
}
