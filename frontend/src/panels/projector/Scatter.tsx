// One WebGL scatterplot of a projection (`PointsRenderer`): every finite point is drawn.
// Pan by drag and zoom by wheel; lasso in lasso mode (or shift-drag); click a point; hover
// a point. 3-D layouts rotate by drag in rotate mode. Rows of NaN coordinates (points the
// server dropped) are left out; `order` maps a drawn point back to its data index.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Coords } from './api';
import type { ColorEncoding } from './encoding';
import { mark, registerPlot } from './hook';
import { HOME, inPolygon, PointsRenderer } from './points';

export type MouseMode = 'pan' | 'lasso' | 'rotate';

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
  /** normalised coordinates of the drawn points: centred, largest extent 1.8 */
  xyz: [Float32Array, Float32Array, Float32Array | null];
  /** the same, interleaved x, y, z per point: the GL position buffer as is */
  pos: Float32Array;
}

/** Centre and scale the finite rows of `coords` into [-0.9, 0.9] (one scale for all axes).
 * Two passes over the data: finite rows and their range, then every output array at once. */
function layout(coords: Coords): Layout {
  const { data, n, dims } = coords;
  const inv = new Int32Array(n).fill(-1);
  const keep = new Int32Array(n);
  const k = Math.min(dims, 3);
  let m = 0;
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; i++) {
    let ok = true;
    for (let d = 0; d < dims; d++) {
      const v = data[i * dims + d];
      if (v - v !== 0) ok = false; // NaN or ±Inf
    }
    if (!ok) continue;
    inv[i] = m;
    keep[m++] = i;
    for (let d = 0; d < k; d++) {
      const v = data[i * dims + d];
      if (v < lo[d]) lo[d] = v;
      if (v > hi[d]) hi[d] = v;
    }
  }
  let extent = 0;
  for (let d = 0; d < k; d++) extent = Math.max(extent, hi[d] - lo[d]);
  const scale = extent > 0 ? 1.8 / extent : 1;
  const mid = [0, 1, 2].map((d) => (d < k ? (lo[d] + hi[d]) / 2 : 0));
  const x = new Float32Array(m);
  const y = new Float32Array(m);
  const z = dims >= 3 ? new Float32Array(m) : null;
  const pos = new Float32Array(3 * m);
  for (let j = 0; j < m; j++) {
    const r = keep[j] * dims;
    const a = (data[r] - mid[0]) * scale;
    const b = k > 1 ? (data[r + 1] - mid[1]) * scale : 0;
    x[j] = a;
    y[j] = b;
    pos[3 * j] = a;
    pos[3 * j + 1] = b;
    if (z !== null) {
      const c = (data[r + 2] - mid[2]) * scale;
      z[j] = c;
      pos[3 * j + 2] = c;
    }
  }
  return { order: keep.slice(0, m), inv, xyz: [x, y, z], pos };
}

function hexRgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

const PICK_PX = 8;

export function Scatter(props: ScatterProps) {
  const { id, coords, color, size, baseSize, highlight, mode } = props;
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const glRef = useRef<PointsRenderer | null>(null);
  const cb = useRef(props);
  cb.current = props;
  const [error, setError] = useState<string | null>(null);
  const [lasso, setLasso] = useState<number[] | null>(null);
  const lay = useMemo(() => {
    if (!coords) return null;
    const l = layout(coords);
    mark(`${id}:layout`);
    return l;
  }, [coords]);
  const layRef = useRef(lay);
  layRef.current = lay;
  const stats = useRef({ draws: 0, firstFrameAt: -1 });
  const is3d = lay !== null && lay.xyz[2] !== null;

  useEffect(() => {
    const canvas = canvasRef.current;
    if (canvas === null) return;
    let gl: PointsRenderer;
    try {
      gl = new PointsRenderer(canvas);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      return;
    }
    glRef.current = gl;
    const ro = new ResizeObserver(() => gl.requestRender());
    ro.observe(canvas);
    const unregister = registerPlot(id, {
      count: () => gl.n,
      draws: () => stats.current.draws,
      firstFrameAt: () => stats.current.firstFrameAt,
      screenPos: (index: number) => {
        const j = layRef.current?.inv[index] ?? -1;
        if (j < 0 || j >= gl.n) return null;
        const [x, y] = gl.project(j);
        const r = canvas.getBoundingClientRect();
        return [r.left + x, r.top + y];
      },
      frameMs: () => [...gl.frameMs],
      panBy: (dx: number, dy: number) => {
        gl.panBy(dx, dy);
        gl.render();
      },
      syncFrameMs: (dx: number, dy: number) => {
        const t0 = performance.now();
        gl.panBy(dx, dy);
        gl.render();
        gl.gl.readPixels(0, 0, 1, 1, gl.gl.RGBA, gl.gl.UNSIGNED_BYTE, new Uint8Array(4));
        return performance.now() - t0;
      },
    });
    return () => {
      unregister();
      ro.disconnect();
      glRef.current = null;
      gl.destroy();
    };
  }, []);

  // positions (a new layout keeps the camera unless the dimensionality changed)
  useEffect(() => {
    const gl = glRef.current;
    if (gl === null || lay === null) return;
    const was3d = gl.is3d;
    gl.setPoints(...lay.xyz, lay.pos);
    mark(`${id}:upload`);
    if (gl.n > 0 && was3d !== gl.is3d) gl.camera = gl.is3d ? { ...HOME, zoom: 0.7, yaw: 0.6, pitch: 0.35 } : { ...HOME };
  }, [lay]);

  // colours, sizes, highlight -> buffers, then one frame
  useEffect(() => {
    const gl = glRef.current;
    if (gl === null || lay === null) return;
    const m = lay.order.length;
    const first = stats.current.firstFrameAt < 0 && m > 0;
    // one 32-bit write per point: the palette as RGBA words in the platform's byte order
    const rgba = new Uint8Array(m * 4);
    const words = new Uint32Array(rgba.buffer);
    const palette = new Uint32Array(Math.max(1, color.colors.length));
    const bytes = new Uint8Array(palette.buffer);
    color.colors.forEach((hex, k) => {
      const [r, g, b] = hexRgb(hex);
      bytes.set([r, g, b, 255], 4 * k);
    });
    const codes = color.codes;
    const order = lay.order;
    const top = palette.length;
    for (let j = 0; j < m; j++) {
      const c = codes[order[j]];
      words[j] = palette[c >= 0 && c < top ? c : 0];
    }
    const sizes = new Float32Array(m);
    if (size) {
      for (let j = 0; j < m; j++) sizes[j] = baseSize * (0.5 + 3 * (size[order[j]] ?? 0));
    } else {
      sizes.fill(baseSize);
    }
    if (first) mark(`${id}:colors`);
    gl.setColors(rgba);
    gl.setSizes(sizes);
    gl.setSelected(highlight.map((i) => lay.inv[i]).filter((j) => j >= 0));
    if (first) mark(`${id}:colorUpload`);
    gl.render();
    stats.current.draws++;
    if (first) mark(`${id}:draw`);
    if (first) {
      // the first frame counts once the GPU has finished it (benchmarks read this)
      gl.gl.readPixels(0, 0, 1, 1, gl.gl.RGBA, gl.gl.UNSIGNED_BYTE, new Uint8Array(4));
      stats.current.firstFrameAt = performance.now();
    }
  }, [lay, color, size, baseSize, highlight]);

  // --- mouse: pan / rotate / lasso / hover / click
  const drag = useRef<{ x: number; y: number; x0: number; y0: number; far: number; kind: 'pan' | 'rotate' | 'lasso'; poly: number[] } | null>(null);
  const hoverFrame = useRef(0);
  // Where the pointer is now: the frame picks at the latest position, not the first one.
  const hoverAt = useRef<[number, number]>([0, 0]);
  const local = (e: MouseEvent): [number, number] => {
    const r = canvasRef.current?.getBoundingClientRect();
    return r ? [e.clientX - r.left, e.clientY - r.top] : [0, 0];
  };
  const pick = (px: number, py: number): number => {
    const gl = glRef.current;
    const l = layRef.current;
    if (gl === null || l === null || gl.n === 0) return -1;
    const [sx, sy] = gl.projectAll();
    let best = -1;
    let bestD = Math.max(PICK_PX, baseSize) ** 2;
    for (let j = 0; j < sx.length; j++) {
      const dx = sx[j] - px;
      const dy = sy[j] - py;
      const d = dx * dx + dy * dy;
      if (d <= bestD) {
        bestD = d;
        best = j;
      }
    }
    return best < 0 ? -1 : l.order[best];
  };
  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    const [x, y] = local(e);
    const kind = mode === 'lasso' || e.shiftKey ? 'lasso' : mode === 'rotate' && is3d ? 'rotate' : 'pan';
    drag.current = { x, y, x0: x, y0: y, far: 0, kind, poly: [x, y] };
    (e.currentTarget as HTMLElement).setPointerCapture?.(e.pointerId);
  };
  const onPointerMove = (e: PointerEvent) => {
    const [x, y] = local(e);
    const d = drag.current;
    const gl = glRef.current;
    if (d === null || gl === null) {
      hoverAt.current = [x, y];
      if (hoverFrame.current === 0) {
        hoverFrame.current = requestAnimationFrame(() => {
          hoverFrame.current = 0;
          const [hx, hy] = hoverAt.current;
          const i = pick(hx, hy);
          cb.current.onHover(i < 0 ? null : i, hx, hy);
        });
      }
      return;
    }
    d.far = Math.max(d.far, Math.hypot(x - d.x0, y - d.y0));
    if (d.kind === 'lasso') {
      d.poly.push(x, y);
      setLasso([...d.poly]);
    } else if (d.kind === 'rotate') {
      gl.camera.yaw += (x - d.x) * 0.01;
      gl.camera.pitch = Math.max(-1.55, Math.min(1.55, gl.camera.pitch + (y - d.y) * 0.01));
      gl.requestRender();
    } else {
      gl.panBy(x - d.x, y - d.y);
      gl.requestRender();
    }
    d.x = x;
    d.y = y;
  };
  const onPointerUp = (e: PointerEvent) => {
    const d = drag.current;
    drag.current = null;
    if (d === null) return;
    const [x, y] = local(e);
    const moved = Math.max(d.far, Math.hypot(x - d.x0, y - d.y0));
    if (d.kind === 'lasso' && d.poly.length >= 6 && moved >= 4) {
      setLasso(null);
      const gl = glRef.current;
      const l = layRef.current;
      if (gl === null || l === null) return;
      const poly = d.poly;
      let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
      for (let k = 0; k < poly.length; k += 2) {
        [x0, x1] = [Math.min(x0, poly[k]), Math.max(x1, poly[k])];
        [y0, y1] = [Math.min(y0, poly[k + 1]), Math.max(y1, poly[k + 1])];
      }
      const [sx, sy] = gl.projectAll();
      const inside: number[] = [];
      for (let j = 0; j < sx.length; j++) {
        if (sx[j] < x0 || sx[j] > x1 || sy[j] < y0 || sy[j] > y1) continue;
        if (inPolygon(poly, sx[j], sy[j])) inside.push(l.order[j]);
      }
      cb.current.onLasso(inside);
      return;
    }
    setLasso(null);
    if (moved < 4) {
      const i = pick(x, y);
      if (i >= 0) cb.current.onClick(i);
    }
  };
  const onWheel = (e: WheelEvent) => {
    const gl = glRef.current;
    if (gl === null) return;
    e.preventDefault();
    const [x, y] = local(e);
    gl.zoomAt(Math.exp(-e.deltaY * 0.0015), x, y);
    gl.requestRender();
  };

  return (
    <div class="proj-plot" data-plot={id} data-testid={`proj-plot-${id}`} data-mode={mode}>
      <canvas
        ref={canvasRef}
        class="proj-canvas"
        data-testid={`proj-canvas-${id}`}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerLeave={() => cb.current.onHover(null, 0, 0)}
        onDblClick={() => cb.current.onDeselect()}
        onWheel={onWheel}
      />
      {lasso !== null && (
        <svg class="proj-lasso" aria-hidden="true">
          <polygon points={lasso.join(',')} />
        </svg>
      )}
      {error !== null && <div class="error proj-plot-error">{error}</div>}
    </div>
  );
}
