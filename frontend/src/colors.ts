// Run colours: distinct hues that are never red (red is reserved for non-finite markers).
const PALETTE = [
  '#3b82f6', // blue
  '#f59e0b', // amber
  '#10b981', // green
  '#8b5cf6', // violet
  '#06b6d4', // cyan
  '#ec4899', // pink
  '#84cc16', // lime
  '#6366f1', // indigo
  '#14b8a6', // teal
  '#a16207', // brown
];

export const NONFINITE_COLOR = '#ff1f1f';

export function runColor(index: number): string {
  return PALETTE[((index % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** "#rrggbb" → "rgba(r,g,b,a)". */
export function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}
