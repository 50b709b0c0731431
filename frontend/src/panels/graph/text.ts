// Plain-text formatting and box sizes for graph nodes (all text reaches the DOM as text nodes).
import type { LevelNode, Shape, TensorMeta } from './types';

export const CHAR_W = 6.6; // average glyph width of the 11-12px UI font, for box sizing
export const LABEL_CHAR_W = 7.6; // the same for a node's bold 12px title (`.gx-label`)
export const GLYPH_W = 18; // room for a group's +/− glyph at the title's right end
export const OP_H = 52;
export const GROUP_H = 56;
export const HEADER_H = 34; // header band of an expanded group
export const MIN_W = 104;
export const MAX_W = 260;
export const PORT = 10; // virtual input/output port nodes inside an expanded group

export function formatShape(shape: Shape | undefined): string {
  if (shape === null || shape === undefined) return '?';
  if (shape.length === 0) return 'scalar';
  return shape.map((d) => (d === null ? '?' : String(d))).join('×');
}

export function formatTensor(t: TensorMeta): string {
  return `${t.dtype ?? '?'} ${formatShape(t.shape)}`;
}

export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  return String(n);
}

export function displayLabel(n: LevelNode): string {
  if (n.label !== '') return n.label;
  if (n.kind === 'group') {
    const ns = n.id.startsWith('ns:') ? n.id.slice(3) : n.namespace;
    return ns.slice(ns.lastIndexOf('/') + 1);
  }
  return n.op || n.id;
}

/** Second line: op for an op node; module type and parameter count for a group. */
export function subtitle(n: LevelNode): string {
  if (n.kind === 'op') return n.op;
  const parts = [n.moduleType || 'group'];
  if (n.params > 0) parts.push(`${formatCount(n.params)} params`);
  return parts.join(' · ');
}

export function outputLine(n: LevelNode): string {
  if (n.outputs.length === 0) return n.kind === 'group' ? `${n.opCount} ops` : '';
  const first = formatShape(n.outputs[0].shape);
  return n.outputs.length > 1 ? `${first} +${n.outputs.length - 1}` : first;
}

export function collapsedSize(n: LevelNode): { w: number; h: number } {
  const chars = Math.max(subtitle(n).length, outputLine(n).length);
  const title = displayLabel(n).length * LABEL_CHAR_W + (n.kind === 'group' ? GLYPH_W : 0);
  const w = Math.min(MAX_W, Math.max(MIN_W, Math.ceil(Math.max(chars * CHAR_W, title)) + 22));
  return { w, h: n.kind === 'group' ? GROUP_H : OP_H };
}

/** `s` cut to fit `width` pixels, with an ellipsis when cut. */
export function fit(s: string, width: number, charW: number = CHAR_W): string {
  const max = Math.max(1, Math.floor(width / charW));
  return s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`;
}
