// Arrange logged attribution items as a method × input grid: one grid per step, a row per tag
// (method) and a column per input index, with the per-input labels read from the meta.
import type { AttributionItem } from '../../wire/types';

export interface Cell {
  item: AttributionItem;
  target: string | null;
}

export interface Row {
  tag: string;
  method: string;
  layer: string | null;
  cells: Map<number, Cell>;
}

export interface Column {
  index: number;
  label: string | null;
  pred: string | null;
  /** An item of this column with a logged input image part (the first row that has one). */
  input: AttributionItem | null;
}

export interface Grid {
  step: number;
  rows: Row[];
  columns: Column[];
  /** Colormap stops ("#rrggbb", from 0 to 1) of the first overlay that names them. */
  colorbar: string[];
  cmap: string | null;
}

const HEX = /^#[0-9a-fA-F]{6}$/;

function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function indexOf(item: AttributionItem): number {
  const i = item.meta.input_index;
  return typeof i === 'number' && Number.isInteger(i) ? i : 0;
}

/** Steps that hold attributions, ascending. */
export function stepsOf(items: readonly AttributionItem[]): number[] {
  return [...new Set(items.map((it) => it.step))].sort((a, b) => a - b);
}

/** The grid of `step`: rows sorted by tag, columns by input index. */
export function buildGrid(items: readonly AttributionItem[], step: number): Grid {
  const rows = new Map<string, Row>();
  const columns = new Map<number, Column>();
  let colorbar: string[] = [];
  let cmap: string | null = null;
  for (const item of items) {
    if (item.step !== step) continue;
    const m = item.meta;
    const index = indexOf(item);
    let row = rows.get(item.tag);
    if (row === undefined) {
      row = { tag: item.tag, method: text(m.method) ?? item.tag, layer: text(m.layer), cells: new Map() };
      rows.set(item.tag, row);
    }
    row.cells.set(index, { item, target: text(m.target) });
    let col = columns.get(index);
    if (col === undefined) {
      col = { index, label: null, pred: null, input: null };
      columns.set(index, col);
    }
    col.label ??= text(m.label);
    col.pred ??= text(m.pred);
    if (col.input === null && item.parts.input !== null) col.input = item;
    if (colorbar.length === 0 && Array.isArray(m.colorbar)) {
      const stops = m.colorbar.filter((c): c is string => typeof c === 'string' && HEX.test(c));
      if (stops.length >= 2) {
        colorbar = stops;
        cmap = text(m.cmap);
      }
    }
  }
  return {
    step,
    rows: [...rows.values()].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0)),
    columns: [...columns.values()].sort((a, b) => a.index - b.index),
    colorbar,
    cmap,
  };
}
