import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, type HistogramPoint } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion, useWidth } from '../../hooks';
import { drawHistograms, type HistogramMode } from './draw';
import { nonfiniteTotals } from './percentiles';

const MAX_STEPS = 200;
const HEIGHT = 220;

export function HistogramChart({ tag, runs, mode }: { tag: string; runs: string[]; mode: HistogramMode }) {
  const version = useDebounced(useRunsVersion(runs), 300);
  const [data, setData] = useState<Record<string, HistogramPoint[]>>({});
  const [error, setError] = useState<string | null>(null);
  const runsKey = runs.join('\u0000');

  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(runs.map((run) => api.histograms(run, tag, MAX_STEPS, ctl.signal)))
      .then((all) => {
        const next: Record<string, HistogramPoint[]> = {};
        all.forEach((r, i) => (next[runs[i]] = [...r.histograms].sort((a, b) => a.step - b.step)));
        setData(next);
        setError(null);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(String(e));
      });
    return () => ctl.abort();
  }, [runsKey, tag, version]);

  return (
    <div class="card" data-testid="histogram-chart" data-tag={tag} data-mode={mode}>
      <div class="card-head">
        <span class="card-title">{tag}</span>
      </div>
      {runs.map((run) => (
        <RunHistogram key={run} run={run} hs={data[run] ?? []} mode={mode} showRun={runs.length > 1} />
      ))}
      <div class="nonfinite-counts" data-testid="nonfinite-counts">
        {runs.map((run) => {
          const t = nonfiniteTotals(data[run] ?? []);
          return (
            <div key={run}>
              {runs.length > 1 ? `${run}: ` : ''}NaN {t.nan} · +Inf {t.posinf} · −Inf {t.neginf}
              {t.emptySteps > 0 ? ` · ${t.emptySteps} step(s) all non-finite (drawn empty)` : ''}
            </div>
          );
        })}
      </div>
      {error !== null && <div class="error">{error}</div>}
    </div>
  );
}

function RunHistogram(props: { run: string; hs: HistogramPoint[]; mode: HistogramMode; showRun: boolean }) {
  const { colorOf } = useDashboard();
  const boxRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const width = useWidth(boxRef);
  const color = colorOf(props.run);
  useLayoutEffect(() => {
    const canvas = canvasRef.current;
    if (canvas === null || width <= 0) return;
    const labels = drawHistograms(canvas, props.hs, props.mode, color, width, HEIGHT);
    canvas.dataset.steps = String(props.hs.length);
    // The x labels as drawn ([text, left, right] in CSS px), for the browser tests.
    canvas.dataset.xLabels = JSON.stringify(labels.map((l) => [l.text, Math.round(l.left), Math.round(l.right)]));
  }, [props.hs, props.mode, color, width]);
  return (
    <div class="run-hist" ref={boxRef} data-run={props.run}>
      {props.showRun && (
        <div class="muted run-label">
          <span class="swatch" style={{ background: color }} />
          {props.run}
        </div>
      )}
      <canvas ref={canvasRef} aria-label={`${props.run} histogram`} />
    </div>
  );
}
