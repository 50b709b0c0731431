// One WebGL scatterplot (regl-scatterplot) of a projection: every finite point is drawn; pan
// and zoom with the mouse (wheel, drag), lasso with the lasso mode (or shift-drag), click a
// point, hover a point. 3-D layouts are rotated on the CPU and fed to the 2-D plot each frame
// (drag in "rotate" mode; the wheel zooms there). Rows of NaN coordinates (points the server
// dropped) are left out; `order` maps a drawn point back to its data index.

import createScatterplot from 'regl-scatterplot';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Coords } from './api';
import type { ColorEncoding } from './encoding';
import { registerPlot } from './hook';

export type MouseMode = 'pan' | 'lasso' | 'rotate';

type Plot = ReturnType<typeof createScatterplot>;

export interface ScatterProps {
  /** Names the plot for the automation hook and the DOM (`data-plot`). */
  id: string;
  coords: Coords | null;
  color: ColorEncoding;
  /** Point size in [0, 1] per data point (null: every point `baseSize`). */
  size: Float32Array | null;
  baseSize: number;
  /** Data indices to highlight (lasso selection, neighbours, search matches). */
  highlight: number[];
  mode: MouseMode;
  onHover: (index: number | null, x: number, y: number) => void;
  onClick: (index: number) => void;
  onLasso: (indices: number[]) => void;
  onDeselect: () => void;
}

interface Layout {
  /** data index of each drawn point */
  order: Int32Array;
  /** drawn point of each data index (-1: dropped) */
  inv: Int32Array;
  /** normalised coordinates of the drawn points, centred, largest extent 1.8 */
  xyz: [Float32Array, Float32Array, Float32Array | null];
}

/** Centre and scale the finite rows of `coords` into [-0.9, 0.9] (one scale for all axes). */
function layout(coords: Coords): Layout {
  const { data, n, dims } = coords;
  const inv = new Int32Array(n).fill(-1);
  const keep: number[] = [];
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; i++) {
    let ok = true;
    for (let d = 0; d < dims; d++) if (!Number.isFinite(data[i * dims + d])) ok = false;
    if (!ok) continue;
    inv[i] = keep.length;
    keep.push(i);
    for (let d = 0; d < dims; d++) {
      const v = data[i * dims + d];
      if (v < lo[d]) lo[d] = v;
      if (v > hi[d]) hi[d] = v;
    }
  }
  const m = keep.length;
  let extent = 0;
  for (let d = 0; d < dims; d++) extent = Math.max(extent, hi[d] - lo[d]);
  const scale = extent > 0 ? 1.8 / extent : 1;
  const axes = [0, 1, 2].slice(0, dims).map((d) => {
    const out = new Float32Array(m);
    const mid = (lo[d] + hi[d]) / 2;
    for (let j = 0; j < m; j++) out[j] = (data[keep[j] * dims + d] - mid) * scale;
    return out;
  });
  return { order: Int32Array.from(keep), inv, xyz: [axes[0], axes[1], dims === 3 ? axes[2] : null] };
}

/** Orthographic view of rotated 3-D points (yaw about y, then pitch about x), scaled by zoom. */
function rotate(xyz: Layout['xyz'], yaw: number, pitch: number, zoom: number): [Float32Array, Float32Array] {
  const [x, y, z] = xyz;
  if (z === null) return [x, y];
  const m = x.length;
  const ox = new Float32Array(m);
  const oy = new Float32Array(m);
  const [cy, sy, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
  const k = zoom / Math.sqrt(3);
  for (let j = 0; j < m; j++) {
    const x1 = cy * x[j] + sy * z[j];
    const z1 = -sy * x[j] + cy * z[j];
    ox[j] = x1 * k;
    oy[j] = (cp * y[j] - sp * z1) * k;
  }
  return [ox, oy];
}

export function Scatter(props: ScatterProps) {
  const { id, coords, color, size, baseSize, highlight, mode } = props;
  const hostRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const plotRef = useRef<Plot | null>(null);
  const cb = useRef(props);
  cb.current = props;
  const [error, setError] = useState<string | null>(null);
  const [view, setView] = useState({ yaw: 0.6, pitch: 0.35, zoom: 1.6 });
  const lay = useMemo(() => (coords ? layout(coords) : null), [coords]);
  const layRef = useRef(lay);
  layRef.current = lay;
  const mouse = useRef({ x: 0, y: 0 });
  const drawing = useRef<{ busy: boolean; next: (() => Promise<void>) | null }>({ busy: false, next: null });
  const stats = useRef({ draws: 0, firstFrameAt: -1, drawn: 0 });

  // create / destroy the plot
  useEffect(() => {
    const canvas = canvasRef.current;
    if (canvas === null) return;
    let plot: Plot;
    try {
      plot = createScatterplot({
        canvas,
        syncEvents: true,
        pointSize: baseSize,
        pointSizeSelected: 1,
        pointOutlineWidth: 1.5,
        lassoInitiator: false,
        lassoMinDelay: 5,
        lassoMinDist: 2,
        opacityInactiveMax: 0.3,
        deselectOnDblClick: true,
        deselectOnEscape: true,
        backgroundColor: [0, 0, 0, 0],
        pointColorActive: '#111827',
        pointColorHover: '#111827',
      });
    } catch (e) {
      setError(`WebGL is not available in this browser: ${String(e)}`);
      return;
    }
    if (!plot.isSupported) setError('this browser lacks the WebGL features the projector needs');
    plotRef.current = plot;
    let lassoing = false;
    const toData = (j: number) => layRef.current?.order[j] ?? j;
    plot.subscribe('pointOver', (j) => cb.current.onHover(toData(j), mouse.current.x, mouse.current.y));
    plot.subscribe('pointOut', () => cb.current.onHover(null, 0, 0));
    plot.subscribe('lassoStart', () => {
      lassoing = true;
    });
    plot.subscribe('lassoEnd', () => {
      lassoing = false;
    });
    plot.subscribe('select', ({ points }) => {
      const indices = points.map(toData);
      if (lassoing) cb.current.onLasso(indices);
      else if (indices.length === 1) cb.current.onClick(indices[0]);
    });
    plot.subscribe('deselect', () => cb.current.onDeselect());
    const unregister = registerPlot(id, {
      count: () => stats.current.drawn,
      draws: () => stats.current.draws,
      firstFrameAt: () => stats.current.firstFrameAt,
      screenPos: (index: number) => {
        const j = layRef.current?.inv[index] ?? -1;
        if (j < 0 || stats.current.drawn === 0) return null;
        const pos = plot.getScreenPosition(j);
        if (!pos) return null;
        const r = canvas.getBoundingClientRect();
        return [r.left + pos[0], r.top + pos[1]];
      },
    });
    return () => {
      unregister();
      plotRef.current = null;
      plot.destroy();
    };
  }, []);

  /** Run draws one at a time (regl-scatterplot refuses a draw while one is running); only
   * the newest waiting draw runs. */
  const schedule = (fn: () => Promise<void>) => {
    const q = drawing.current;
    if (q.busy) {
      q.next = fn;
      return;
    }
    q.busy = true;
    const run = (f: () => Promise<void>) => {
      f()
        .catch((e: unknown) => setError(String(e)))
        .finally(() => {
          const next = q.next;
          q.next = null;
          if (next) run(next);
          else q.busy = false;
        });
    };
    run(fn);
  };

  // data, colour and size -> draw
  useEffect(() => {
    const plot = plotRef.current;
    if (plot === null || lay === null) return;
    const [x, y] = rotate(lay.xyz, view.yaw, view.pitch, view.zoom);
    const m = lay.order.length;
    const valueA = new Float32Array(m);
    const valueB = size ? new Float32Array(m) : null;
    for (let j = 0; j < m; j++) {
      const i = lay.order[j];
      valueA[j] = color.codes[i] ?? 0;
      if (valueB && size) valueB[j] = size[i] ?? 0;
    }
    const selected = highlight.map((i) => lay.inv[i]).filter((j) => j >= 0);
    schedule(async () => {
      await plot.set({
        colorBy: 'valueA',
        pointColor: color.colors.length > 1 ? color.colors : [color.colors[0], color.colors[0]],
        sizeBy: valueB ? 'valueB' : null,
        pointSize: valueB ? [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4].map((f) => f * baseSize) : baseSize,
      });
      const points = valueB ? { x, y, valueA, valueB } : { x, y, valueA };
      await plot.draw(points, {
        zDataType: 'categorical',
        wDataType: 'continuous',
        preventFilterReset: true,
        select: selected.length > 0 ? selected : undefined,
      });
      if (selected.length === 0) plot.deselect({ preventEvent: true });
      stats.current.draws++;
      stats.current.drawn = m;
      if (stats.current.firstFrameAt < 0) {
        requestAnimationFrame(() => {
          stats.current.firstFrameAt = performance.now();
        });
      }
    });
  }, [lay, color, size, baseSize, view]);

  // highlight without redrawing the points
  useEffect(() => {
    const plot = plotRef.current;
    if (plot === null || lay === null) return;
    const selected = highlight.map((i) => lay.inv[i]).filter((j) => j >= 0);
    schedule(async () => {
      if (stats.current.drawn === 0) return;
      if (selected.length > 0) plot.select(selected, { preventEvent: true });
      else plot.deselect({ preventEvent: true });
    });
  }, [highlight]);

  useEffect(() => {
    const plot = plotRef.current;
    if (plot === null) return;
    void plot.set({ mouseMode: mode === 'lasso' ? 'lasso' : 'panZoom', cameraIsFixed: mode === 'rotate' });
  }, [mode]);

  // 3-D rotation by drag, zoom by wheel (rotate mode only)
  const drag = useRef<{ x: number; y: number } | null>(null);
  const onPointerDown = (e: PointerEvent) => {
    if (mode !== 'rotate' || e.shiftKey || e.button !== 0) return;
    drag.current = { x: e.clientX, y: e.clientY };
  };
  const onPointerMove = (e: PointerEvent) => {
    const r = hostRef.current?.getBoundingClientRect();
    if (r) mouse.current = { x: e.clientX - r.left, y: e.clientY - r.top };
    const d = drag.current;
    if (d === null) return;
    const [dx, dy] = [e.clientX - d.x, e.clientY - d.y];
    drag.current = { x: e.clientX, y: e.clientY };
    setView((v) => ({ ...v, yaw: v.yaw + dx * 0.01, pitch: Math.max(-1.55, Math.min(1.55, v.pitch + dy * 0.01)) }));
  };
  const onWheel = (e: WheelEvent) => {
    if (mode !== 'rotate') return;
    e.preventDefault();
    setView((v) => ({ ...v, zoom: Math.max(0.2, Math.min(50, v.zoom * Math.exp(-e.deltaY * 0.001))) }));
  };

  return (
    <div
      class="proj-plot"
      ref={hostRef}
      data-plot={id}
      data-testid={`proj-plot-${id}`}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={() => (drag.current = null)}
      onPointerLeave={() => (drag.current = null)}
      onWheel={onWheel}
    >
      <canvas ref={canvasRef} class="proj-canvas" />
      {error !== null && <div class="error proj-plot-error">{error}</div>}
    </div>
  );
}
