// Messages between the explorer and the layout worker (elk.worker.ts).

export interface LayoutNodeIn {
  id: string;
  w: number;
  h: number;
  /** Keep a virtual port node in the first / last layer. */
  constraint?: 'FIRST' | 'LAST';
  /** No input of the level reaches it (a weight or constant node): the fast engine places it
   * just above its first consumer. */
  hang?: boolean;
}

export interface LayoutEdgeIn {
  src: string;
  dst: string;
}

export type LayoutEngine = 'elk' | 'quick';

export interface LayoutRequest {
  id: number;
  engine: LayoutEngine;
  nodes: LayoutNodeIn[];
  edges: LayoutEdgeIn[];
}

/** Positions are top-left corners; `edges[i]` routes request edge i as flat [x0, y0, x1, y1, ...]
 * (empty when the engine dropped it, e.g. a self loop). */
export interface LayoutResult {
  width: number;
  height: number;
  x: number[];
  y: number[];
  edges: number[][];
}

export type LayoutResponse =
  | { id: number; ok: true; result: LayoutResult; ms: number }
  | { id: number; ok: false; error: string };

/** Padding around a level's content and spacing used by both engines. */
export const LEVEL_PAD = 14;
export const NODE_GAP = 20;
export const LAYER_GAP = 30;
