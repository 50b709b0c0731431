// The SVG canvas: pan (drag), zoom (wheel), fit and centre; renders only what is in view
// (plus a margin) and drops text when zoomed far out, so levels of thousands of nodes stay fluid.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { JSX } from 'preact';
import { memo } from 'preact/compat';
import type { Colorer } from './colorScale';
import { textOn } from './colorScale';
import type { OverlayBadge } from './overlays';
import type { Scene, SceneEdge, SceneNode } from './scene';
import { displayLabel, fit, GLYPH_W, HEADER_H, LABEL_CHAR_W, outputLine, subtitle } from './text';

export type ViewCommand = { kind: 'fit' | 'center'; id?: string; seq: number };

export interface GraphViewProps {
  scene: Scene;
  colorer: Colorer;
  selectedId: string | null;
  highlightId: string | null;
  /** When the scene changes, keep this node where it was on screen. */
  anchorId: string | null;
  command: ViewCommand | null;
  onSelect: (id: string | null) => void;
  onToggle: (id: string) => void;
  /** The pointer rests on a collapsed group: a good moment to fetch its level. */
  onHoverGroup?: (id: string) => void;
  /** Diagnosis events to badge, by the id of the shown node that holds their layer. */
  badges?: Map<string, OverlayBadge[]>;
  /** Nodes of the layer hovered in another panel (linked selection). */
  linkedIds?: Set<string>;
}

interface View {
  k: number;
  tx: number;
  ty: number;
}

interface Win {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  low: boolean;
}

const LOW_DETAIL_K = 0.4;
const HOVER_PREFETCH_MS = 120;
const MIN_K = 0.02;
/** Expanding never zooms out below this: a huge group shows its first rows legibly. */
const KEEP_MIN_K = 0.45;
const MAX_K = 4;

function edgePath(p: number[]): string {
  if (p.length === 4 && p[0] !== p[2]) {
    const my = (p[1] + p[3]) / 2;
    return `M${p[0]},${p[1]} C${p[0]},${my} ${p[2]},${my} ${p[2]},${p[3]}`;
  }
  let d = `M${p[0]},${p[1]}`;
  for (let k = 2; k < p.length; k += 2) d += ` L${p[k]},${p[k + 1]}`;
  return d;
}

function nodeClass(sn: SceneNode, selected: boolean, hit: boolean, linked: boolean): string {
  let c = sn.expanded ? 'gx-node gx-open' : `gx-node gx-${sn.node.kind}`;
  if (selected) c += ' gx-selected';
  if (hit) c += ' gx-hit';
  if (linked) c += ' gx-linked';
  return c;
}

function renderBadge(sn: SceneNode, items: OverlayBadge[]): JSX.Element {
  const error = items.some((b) => b.severity === 'error');
  const nan = items.find((b) => b.kind.startsWith('nonfinite'));
  const first = nan ?? items[0];
  const text = nan !== undefined ? 'NaN' : items.length > 1 ? String(items.length) : '!';
  const w = Math.max(18, text.length * 7 + 8);
  return (
    <g
      key={`badge:${sn.node.id}`}
      class={`gx-badge ${error ? 'gx-badge-error' : 'gx-badge-warning'}`}
      data-testid="graph-badge"
      data-node-id={sn.node.id}
      data-kind={first.kind}
      data-step={first.step}
      transform={`translate(${sn.x + sn.w - 6},${sn.y - 10})`}
    >
      <rect width={w} height={16} rx={8} />
      <text x={w / 2} y={12} text-anchor="middle">
        {text}
      </text>
      <title>{items.map((b) => `step ${b.step} · ${b.kind} · ${b.layer}: ${b.message}`).join('\n')}</title>
    </g>
  );
}

interface NodeProps {
  sn: SceneNode;
  fill: string;
  selected: boolean;
  hit: boolean;
  linked: boolean;
  low: boolean;
}

function renderNode(sn: SceneNode, p: GraphViewProps, low: boolean): JSX.Element {
  const id = sn.node.id;
  return (
    <NodeView
      key={id}
      sn={sn}
      fill={p.colorer.fill(sn.node)}
      selected={p.selectedId === id}
      hit={p.highlightId === id}
      linked={p.linkedIds?.has(id) ?? false}
      low={low}
    />
  );
}

/** One node, memoised on what it draws: a recolour (a scrubber step) re-renders only the
 * nodes whose fill changed. */
const NodeView = memo(function NodeView({ sn, fill, selected, hit, linked, low }: NodeProps): JSX.Element {
  const n = sn.node;
  const ink = textOn(fill);
  const label = displayLabel(n);
  const common = {
    key: n.id,
    'data-testid': 'graph-node',
    'data-node-id': n.id,
    'data-kind': n.kind,
    'data-expanded': sn.expanded ? 'true' : undefined,
    'data-highlighted': hit ? 'true' : undefined,
    'data-fill': fill,
    class: nodeClass(sn, selected, hit, linked),
    transform: `translate(${sn.x},${sn.y})`,
  };
  if (sn.expanded) {
    return (
      <g {...common}>
        <rect class="gx-box" width={sn.w} height={sn.h} rx={6} fill={fill} fill-opacity={0.28} />
        <rect class="gx-header" width={sn.w} height={HEADER_H - 4} rx={6} fill={fill} />
        <text class="gx-label" x={8} y={14} fill={ink}>
          {fit(label, sn.w - 40, LABEL_CHAR_W)}
        </text>
        <text class="gx-sub" x={8} y={26} fill={ink}>
          {fit(subtitle(n), sn.w - 40)}
        </text>
        <text class="gx-glyph" x={sn.w - 18} y={19} fill={ink}>
          −
        </text>
        <title>{`${label} (${n.moduleType || 'group'}), double-click to collapse`}</title>
      </g>
    );
  }
  return (
    <g {...common}>
      <rect class="gx-box" width={sn.w} height={sn.h} rx={n.kind === 'group' ? 6 : 3} fill={fill} />
      {!low && (
        <>
          <text class="gx-label" x={8} y={16} fill={ink}>
            {fit(label, sn.w - (n.kind === 'group' ? 16 + GLYPH_W : 14), LABEL_CHAR_W)}
          </text>
          <text class="gx-sub" x={8} y={31} fill={ink}>
            {fit(subtitle(n), sn.w - 14)}
          </text>
          <text class="gx-shape" x={8} y={45} fill={ink}>
            {fit(outputLine(n), sn.w - 14)}
          </text>
          {n.kind === 'group' && (
            <text class="gx-glyph" x={sn.w - 16} y={17} fill={ink}>
              +
            </text>
          )}
        </>
      )}
      <title>{n.kind === 'group' ? `${label} (${n.moduleType || 'group'}), double-click to expand` : `${label} (${n.op})`}</title>
    </g>
  );
});

function renderEdge(e: SceneEdge): JSX.Element {
  return (
    <path
      key={e.key}
      class="gx-edge"
      d={edgePath(e.pts)}
      marker-end="url(#gx-arrow)"
      data-testid={e.port === undefined ? 'graph-edge' : 'graph-port-edge'}
      data-src={e.src}
      data-dst={e.dst}
      data-port={e.port?.dir}
      data-group={e.port?.group}
      data-child={e.port?.child}
    >
      {e.label !== '' && <title>{e.label}</title>}
    </path>
  );
}

function inWin(w: Win, x0: number, y0: number, x1: number, y1: number): boolean {
  return x1 >= w.x0 && x0 <= w.x1 && y1 >= w.y0 && y0 <= w.y1;
}

export function GraphView(p: GraphViewProps) {
  const svgRef = useRef<SVGSVGElement>(null);
  const gRef = useRef<SVGGElement>(null);
  const view = useRef<View>({ k: 1, tx: 20, ty: 20 });
  const winRef = useRef<Win | null>(null);
  const [win, setWin] = useState<Win | null>(null);
  // The seq of the last fit/centre command whose view is rendered (tests wait on it).
  const [applied, setApplied] = useState(0);
  const prevScene = useRef<Scene | null>(null);
  const drag = useRef<{ x: number; y: number; moved: boolean } | null>(null);
  const suppressClick = useRef(false);

  const size = () => {
    const r = svgRef.current?.getBoundingClientRect();
    return { w: r?.width || 800, h: r?.height || 600 };
  };

  const windowFor = (): Win => {
    const { k, tx, ty } = view.current;
    const { w, h } = size();
    const vp = { x0: -tx / k, y0: -ty / k, x1: (w - tx) / k, y1: (h - ty) / k };
    const mx = (vp.x1 - vp.x0) / 2;
    const my = (vp.y1 - vp.y0) / 2;
    return { x0: vp.x0 - mx, y0: vp.y0 - my, x1: vp.x1 + mx, y1: vp.y1 + my, low: k < LOW_DETAIL_K };
  };

  const recull = useCallback((force: boolean) => {
    const { k, tx, ty } = view.current;
    const { w, h } = size();
    const vp = { x0: -tx / k, y0: -ty / k, x1: (w - tx) / k, y1: (h - ty) / k };
    const low = k < LOW_DETAIL_K;
    const cur = winRef.current;
    if (!force && cur !== null && cur.low === low && cur.x0 <= vp.x0 && cur.y0 <= vp.y0 && cur.x1 >= vp.x1 && cur.y1 >= vp.y1) {
      return;
    }
    const next = windowFor();
    winRef.current = next;
    setWin(next);
  }, []);

  const apply = useCallback(
    (force = false) => {
      const { k, tx, ty } = view.current;
      gRef.current?.setAttribute('transform', `translate(${tx},${ty}) scale(${k})`);
      recull(force);
    },
    [recull],
  );

  const fitView = (s: Scene) => {
    const { w, h } = size();
    if (s.width <= 0 || s.height <= 0) return;
    const k = Math.max(MIN_K, Math.min(1.2, (0.95 * w) / s.width, (0.95 * h) / s.height));
    view.current = { k, tx: (w - s.width * k) / 2, ty: Math.max(8, (h - s.height * k) / 2) };
  };

  const fitAll = useCallback(() => {
    fitView(p.scene);
    apply(true);
  }, [p.scene, apply]);

  const centerOn = useCallback(
    (id: string) => {
      const sn = p.scene.byId.get(id);
      if (sn === undefined) return;
      const { w, h } = size();
      const k = Math.max(view.current.k, 0.8);
      view.current = { k, tx: w / 2 - (sn.x + sn.w / 2) * k, ty: h / 2 - (sn.y + sn.h / 2) * k };
      apply(true);
    },
    [p.scene, apply],
  );

  // A freshly expanded group that spills out of the view: zoom out (never in) and shift it in.
  const keepInView = (b: SceneNode) => {
    const { w, h } = size();
    const v = view.current;
    const k = Math.min(v.k, Math.max(KEEP_MIN_K, Math.min((0.95 * w) / b.w, (0.95 * h) / b.h)));
    let tx = v.tx + b.x * (v.k - k);
    let ty = v.ty + b.y * (v.k - k);
    const left = b.x * k + tx;
    const top = b.y * k + ty;
    if (left + b.w * k > w) tx -= Math.min(left, left + b.w * k - w + 0.025 * w);
    if (top + b.h * k > h) ty -= Math.min(top, top + b.h * k - h + 0.025 * h);
    if (b.x * k + tx < 0) tx -= b.x * k + tx;
    if (b.y * k + ty < 0) ty -= b.y * k + ty;
    view.current = { k, tx, ty };
  };

  // New scene: keep the anchor node where it was on screen (or fit the first scene), and
  // cull for the new view right here, so an expansion costs one render, not two.
  if (prevScene.current !== p.scene && svgRef.current !== null) {
    const prev = prevScene.current;
    prevScene.current = p.scene;
    const a = p.anchorId === null ? undefined : prev?.byId.get(p.anchorId);
    const b = p.anchorId === null ? undefined : p.scene.byId.get(p.anchorId);
    if (prev === null || prev.nodes.length === 0) fitView(p.scene);
    else if (a !== undefined && b !== undefined) {
      view.current.tx += (a.x - b.x) * view.current.k;
      view.current.ty += (a.y - b.y) * view.current.k;
      if (b.expanded) keepInView(b);
    }
    winRef.current = windowFor();
  }
  useLayoutEffect(() => {
    if (prevScene.current !== p.scene) {
      // First render happened before the SVG existed: fit now.
      prevScene.current = p.scene;
      fitAll();
    }
  }, [p.scene]);

  useEffect(() => {
    const c = p.command;
    if (c === null) return;
    if (c.kind === 'fit') fitAll();
    else if (c.id !== undefined) centerOn(c.id);
    setApplied(c.seq);
  }, [p.command?.seq]);

  useEffect(() => {
    const svg = svgRef.current;
    if (svg === null) return;
    const onWheel = (ev: WheelEvent) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      const sx = ev.clientX - r.left;
      const sy = ev.clientY - r.top;
      const v = view.current;
      const k = Math.min(MAX_K, Math.max(MIN_K, v.k * Math.exp(-ev.deltaY * 0.0015)));
      view.current = { k, tx: sx - ((sx - v.tx) * k) / v.k, ty: sy - ((sy - v.ty) * k) / v.k };
      apply();
    };
    const onResize = new ResizeObserver(() => apply());
    svg.addEventListener('wheel', onWheel, { passive: false });
    onResize.observe(svg);
    return () => {
      svg.removeEventListener('wheel', onWheel);
      onResize.disconnect();
    };
  }, [apply]);

  const onPointerDown = (ev: PointerEvent) => {
    if (ev.button !== 0) return;
    drag.current = { x: ev.clientX, y: ev.clientY, moved: false };
    const move = (e: PointerEvent) => {
      const d = drag.current;
      if (d === null) return;
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      if (!d.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      d.moved = true;
      d.x = e.clientX;
      d.y = e.clientY;
      view.current.tx += dx;
      view.current.ty += dy;
      apply();
    };
    const up = () => {
      suppressClick.current = drag.current?.moved ?? false;
      drag.current = null;
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  };

  const targetId = (ev: Event): string | null => {
    const el = (ev.target as Element | null)?.closest?.('[data-node-id]');
    return el?.getAttribute('data-node-id') ?? null;
  };

  const onClick = (ev: MouseEvent) => {
    if (suppressClick.current) {
      suppressClick.current = false;
      return;
    }
    p.onSelect(targetId(ev));
  };

  const hoverTimer = useRef(0);
  const onPointerOver = (ev: PointerEvent) => {
    const el = (ev.target as Element | null)?.closest?.('[data-node-id]');
    window.clearTimeout(hoverTimer.current);
    const id = el?.getAttribute('data-node-id');
    if (id == null || !id.startsWith('ns:') || el?.hasAttribute('data-expanded') || p.onHoverGroup === undefined) return;
    const cb = p.onHoverGroup;
    hoverTimer.current = window.setTimeout(() => cb(id), HOVER_PREFETCH_MS);
  };

  const onDblClick = (ev: MouseEvent) => {
    const id = targetId(ev);
    if (id !== null && id.startsWith('ns:')) p.onToggle(id);
  };

  void win; // state only schedules renders; the window itself lives in winRef
  const w = winRef.current;
  const open: JSX.Element[] = [];
  const leaves: JSX.Element[] = [];
  const badges: JSX.Element[] = [];
  if (w !== null) {
    for (const sn of p.scene.nodes) {
      if (!inWin(w, sn.x, sn.y, sn.x + sn.w, sn.y + sn.h)) continue;
      (sn.expanded ? open : leaves).push(renderNode(sn, p, w.low));
      const items = p.badges?.get(sn.node.id);
      if (items !== undefined && items.length > 0) badges.push(renderBadge(sn, items));
    }
  }
  // Edges and ports change only with the scene and the window: the same elements are reused
  // across recolours (a scrubber step), so Preact skips them.
  const [edges, portDots] = useMemo(() => {
    if (w === null) return [[], []];
    const es: JSX.Element[] = [];
    for (const e of p.scene.edges) if (inWin(w, e.x0, e.y0, e.x1, e.y1)) es.push(renderEdge(e));
    const ports = p.scene.ports.filter((b) => inWin(w, b.x, b.y, b.x + b.w, b.y + b.h));
    const dots = ports.map((b, i) => <circle key={i} class="gx-port" cx={b.x + b.w / 2} cy={b.y + b.h / 2} r={b.w / 2} />);
    return [es, dots];
  }, [p.scene, w]);

  return (
    <svg
      ref={svgRef}
      class="gx-canvas"
      data-testid="graph-canvas"
      data-rendered-nodes={open.length + leaves.length}
      data-command={applied}
      onPointerDown={onPointerDown}
      onClick={onClick}
      onDblClick={onDblClick}
      onPointerOver={onPointerOver}
    >
      <defs>
        <marker id="gx-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="gx-arrowhead" />
        </marker>
      </defs>
      <g ref={gRef} transform={`translate(${view.current.tx},${view.current.ty}) scale(${view.current.k})`}>
        <g class="gx-groups">{open}</g>
        <g class="gx-edges">{edges}</g>
        <g class="gx-ports">{portDots}</g>
        <g class="gx-leaves">{leaves}</g>
        <g class="gx-badges">{badges}</g>
      </g>
    </svg>
  );
}
