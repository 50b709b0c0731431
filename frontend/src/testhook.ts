// A small, documented automation hook used by benchmarks/dashboard_bench.py and the e2e tests:
//   window.__deepscope.zoom(tag, startStep, endStep) -> Promise<number>
// zooms the scalar chart of `tag` to [startStep, endStep] exactly as a drag-select would and
// resolves with the number of points drawn once the re-queried data is on the canvas.
//   window.__deepscope.scale(tag) -> { min, max }
// the y scale of the scalar chart named `tag` as uPlot last set it (e.g. to check that
// outliers are left out of the range).
// It reads nothing the page cannot already read and only drives the UI.

type ZoomFn = (startStep: number, endStep: number) => Promise<number>;

type ScaleFn = () => { min: number | null; max: number | null };

const zoomers = new Map<string, ZoomFn>();
const scales = new Map<string, ScaleFn>();

export function registerScale(tag: string, fn: ScaleFn): () => void {
  scales.set(tag, fn);
  return () => {
    if (scales.get(tag) === fn) scales.delete(tag);
  };
}

export function registerZoom(tag: string, fn: ZoomFn): () => void {
  zoomers.set(tag, fn);
  return () => {
    if (zoomers.get(tag) === fn) zoomers.delete(tag);
  };
}

declare global {
  interface Window {
    __deepscope?: {
      zoom: (tag: string, start: number, end: number) => Promise<number>;
      scale: (tag: string) => { min: number | null; max: number | null } | null;
    };
  }
}

export function installTestHook(): void {
  window.__deepscope = {
    zoom(tag, start, end) {
      const fn = zoomers.get(tag);
      if (fn === undefined) return Promise.reject(new Error(`no scalar chart for tag ${tag}`));
      return fn(start, end);
    },
    scale(tag) {
      const fn = scales.get(tag);
      return fn === undefined ? null : fn();
    },
  };
}
