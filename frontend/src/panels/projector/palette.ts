// Colours of the projector: a 20-colour categorical palette (Tableau 10 then its light
// tints; categories past 20 reuse it) and a viridis ramp for number columns.

export const CATEGORY_COLORS = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
  '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

/** The colour of points with no value (a null number, a missing category). */
export const MISSING_COLOR = '#b8b8b8';
/** Points drawn before a colour column is chosen. */
export const DEFAULT_COLOR = '#4e79a7';

const VIRIDIS_STOPS: [number, number, number][] = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];

function hex(r: number, g: number, b: number): string {
  return `#${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
}

/** `n` colours along viridis (n >= 2). */
export function ramp(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = (i / (n - 1)) * (VIRIDIS_STOPS.length - 1);
    const k = Math.min(VIRIDIS_STOPS.length - 2, Math.floor(t));
    const f = t - k;
    const [a, b] = [VIRIDIS_STOPS[k], VIRIDIS_STOPS[k + 1]];
    out.push(hex(a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f));
  }
  return out;
}

export function categoryColor(code: number): string {
  return code < 0 ? MISSING_COLOR : CATEGORY_COLORS[code % CATEGORY_COLORS.length];
}
