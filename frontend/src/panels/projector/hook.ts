// A small automation hook for the browser tests and benchmarks/projector_browser_bench.py:
//   window.__deepscopeProjector.plot(id) -> { count(), draws(), firstFrameAt(), screenPos(i),
//   frameMs(), panBy(dx, dy), syncFrameMs(dx, dy) }
// count: points on the canvas; draws: draw calls done; firstFrameAt: performance.now() of
// the first frame with points; screenPos(i): client (CSS px) position of data point i, or
// null when it is not drawn. `timings` holds performance.now() marks of the panel (the
// projection request, the coordinates' arrival). It reads nothing the page cannot read.

export interface PlotProbe {
  count: () => number;
  draws: () => number;
  firstFrameAt: () => number;
  screenPos: (index: number) => [number, number] | null;
  /** CPU time of the last frames' draw calls, ms */
  frameMs: () => number[];
  /** pan by (dx, dy) CSS px and draw one frame at once */
  panBy: (dx: number, dy: number) => void;
  /** pan by (dx, dy), draw, and wait for the GPU (a 1-pixel readPixels): ms of that frame */
  syncFrameMs: (dx: number, dy: number) => number;
}

const plots = new Map<string, PlotProbe>();
const timings: Record<string, number> = {};

declare global {
  interface Window {
    __deepscopeProjector?: {
      plot: (id: string) => PlotProbe | null;
      timings: Record<string, number>;
    };
  }
}

export function registerPlot(id: string, probe: PlotProbe): () => void {
  plots.set(id, probe);
  install();
  return () => {
    if (plots.get(id) === probe) plots.delete(id);
  };
}

/** Record a timing mark (`performance.now()`) under `name`. */
export function mark(name: string): void {
  timings[name] = performance.now();
  install();
}

function install(): void {
  if (window.__deepscopeProjector === undefined) {
    window.__deepscopeProjector = { plot: (id) => plots.get(id) ?? null, timings };
  }
}
