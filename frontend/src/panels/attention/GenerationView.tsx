// Decoders: for each generated token, the attention of the query that predicted it (the
// position before it) over the prompt and the tokens generated before it, one row per
// generated token, each key a chip coloured by weight (darkest to brightest of the row).

import { lut } from '../activations/colormap';
import { at, fmt, type Matrix } from './data';

const MAX_ROWS = 128;
const MAX_KEYS = 512;

export interface GenerationProps {
  m: Matrix;
  tokens: string[];
  queryStart: number;
  promptLength: number;
}

export function GenerationView({ m, tokens, queryStart, promptLength }: GenerationProps) {
  const table = lut('viridis');
  const rows: { r: number; token: number }[] = [];
  for (let r = 0; r < m.rows && rows.length < MAX_ROWS; r++) {
    const token = queryStart + r + 1; // the query at position p predicts token p + 1
    if (token >= promptLength && token < tokens.length) rows.push({ r, token });
  }
  if (rows.length === 0) return <div class="empty">no generated tokens in this item</div>;
  return (
    <div class="attn-gen" data-testid="attn-generation">
      <div class="muted">each generated token (bold) and what it attended to: the prompt, then the earlier generated tokens</div>
      {rows.map(({ r, token }) => {
        const keys = Math.min(token, m.cols, MAX_KEYS);
        let top = 0;
        for (let c = 0; c < keys; c++) top = Math.max(top, at(m, r, c));
        return (
          <div key={r} class="attn-gen-row" data-testid="attn-gen-row" data-token={token}>
            <span class="attn-gen-token">{tokens[token] ?? token}</span>
            <span class="attn-gen-keys">
              {Array.from({ length: keys }, (_, c) => {
                const w = at(m, r, c);
                const k = Math.round((w / (top || 1)) * 255) * 3;
                const dark = k < 150 * 3;
                return (
                  <span key={c} class={c >= promptLength ? 'attn-chip generated' : 'attn-chip'} title={`${tokens[c] ?? c}: ${fmt(w)}`}
                    style={{ background: `rgb(${table[k]},${table[k + 1]},${table[k + 2]})`, color: dark ? '#fff' : '#111' }}>
                    {tokens[c] ?? c}
                  </span>
                );
              })}
            </span>
          </div>
        );
      })}
    </div>
  );
}
