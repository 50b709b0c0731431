import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { api, ApiError } from '../../api';
import { runColor, withAlpha } from '../../colors';
import { useDashboard } from '../../context';
import { formatDuration, formatValue } from '../../format';
import { useCoalesced, useDebounced, useRunsVersion, useWidth } from '../../hooks';
import { registerScale, registerZoom } from '../../testhook';
import { drawMarkers } from './markers';
import { buildData, stepRange, type Marker, type NonfiniteKind, type RunSeries, type XMode } from './series';
import { AXIS_FONT, formatTicks, yAxisSize } from './ticks';
import { robustRange } from './yrange';

/** One curve: a tag of a run. */
export interface Line {
  run: string;
  tag: string;
}

export interface ScalarChartProps {
  /** The chart's name: its tag, or the tags of a combined chart joined by " + ". */
  id: string;
  lines: Line[];
  /** Several tags on one chart: the legend names tags (and runs when there are several). */
  combined?: boolean;
  xMode: XMode;
  smoothing: number;
  logY: boolean;
  /** Fit the y axis to the 5–95th percentile of the data (plus a fence), not its extremes. */
  ignoreOutliers: boolean;
  picked?: boolean;
  onPick?: (picked: boolean) => void;
  onRemove?: () => void;
}

type Range = [number, number];

interface Fetched {
  range: Range | null;
  runs: RunSeries[];
}

interface Live {
  markers: Marker[];
  drawn: number;
  series: RunSeries[];
  applied: Range | null | undefined;
  pending: { range: Range; resolve: (n: number) => void } | null;
  /** The y tick labels last drawn (exposed as data-y-labels for tests). */
  yLabels: string[];
  /** The outlier-free y range of the data drawn (null: use the data's extremes). */
  yRange: [number, number] | null;
}

const HEIGHT = 220;
const MAX_POINTS = 10000;
/** Points asked per CSS pixel of chart width: the server keeps each bucket's min and max. */
const POINTS_PER_PX = 2;
/** A zoom (drag-select, reset) re-queries at once; zooms made while a query is in flight
 * wait for its answer (at most this long) and re-query only the latest range. */
export const ZOOM_DEBOUNCE_MS = 150;

/** The `maxPoints` a chart `width` CSS pixels wide asks for. */
export function maxPointsFor(width: number): number {
  return Math.max(16, Math.min(MAX_POINTS, Math.round(width * POINTS_PER_PX)));
}

export function ScalarChart(props: ScalarChartProps) {
  const { id: tag, lines, xMode, smoothing, logY, ignoreOutliers } = props;
  const { colorOf } = useDashboard();
  const boxRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<HTMLDivElement>(null);
  const chartRef = useRef<uPlot | null>(null);
  const origins = useRef(new Map<string, number>());
  const live = useRef<Live>({
    markers: [],
    drawn: 0,
    series: [],
    applied: undefined,
    pending: null,
    yLabels: [],
    yRange: null,
  });
  const width = useWidth(plotRef);
  const [range, setRange] = useState<Range | null>(null);
  const [fetched, setFetched] = useState<Fetched | null>(null);
  const [counts, setCounts] = useState<Record<NonfiniteKind, number>>({ nan: 0, '+inf': 0, '-inf': 0 });
  const [error, setError] = useState<string | null>(null);
  const runs = [...new Set(lines.map((l) => l.run))];
  const version = useDebounced(useRunsVersion(runs), 200);
  const latest = useRef(0);
  const inflight = useRef(0); // seq of the query in flight, 0 when none
  const queryRange = useCoalesced(range, ZOOM_DEBOUNCE_MS, inflight.current !== 0);
  const runsKey = lines.map((l) => `${l.run}\u0001${l.tag}`).join('\u0000');

  useEffect(() => {
    if (width <= 0) return;
    const ctl = new AbortController();
    const range = queryRange;
    const seq = ++latest.current;
    inflight.current = seq;
    const settle = () => {
      if (inflight.current === seq) inflight.current = 0;
    };
    const opts = { maxPoints: maxPointsFor(width), startStep: range?.[0], endStep: range?.[1] };
    Promise.all(
      lines.map((line) =>
        api
          .scalars(line.run, line.tag, opts, ctl.signal)
          .then((r) => r.points)
          .catch((e: unknown) => {
            if (e instanceof ApiError && e.status === 404) return [];
            throw e;
          }),
      ),
    )
      .then((all) => {
        // An answer to an older query (a previous zoom, width or version) never lands.
        if (ctl.signal.aborted || seq !== latest.current) return;
        settle();
        const series = all.map((points, i) => {
          const run = `${lines[i].run}\u0001${lines[i].tag}`;
          if (range === null && points.length > 0) origins.current.set(run, points[0][1]);
          const origin = origins.current.get(run) ?? (points.length > 0 ? points[0][1] : 0);
          return { run, points, origin };
        });
        setFetched({ range, runs: series });
        setError(null);
      })
      .catch((e: unknown) => {
        if (ctl.signal.aborted || seq !== latest.current) return;
        settle();
        setError(String(e));
      });
    return () => {
      ctl.abort();
      settle();
    };
    // `lines` is keyed by runsKey.
  }, [runsKey, queryRange, width, version]);

  const styles = lineStyles(lines, props.combined === true, colorOf);
  const colors = styles.map((st) => `${st.color}${st.dash.join('-')}`).join(',');
  const structure = `${runsKey}|${colors}|${xMode}|${logY}|${smoothing > 0}|${width}|${ignoreOutliers}`;
  useEffect(() => {
    const mount = plotRef.current;
    if (mount === null || width <= 0) return;
    const opts = chartOptions({
      styles,
      ignoreOutliers,
      yRange: () => live.current.yRange,
      xMode,
      logY,
      smoothed: smoothing > 0,
      width,
      onYLabels: (labels) => {
        live.current.yLabels = labels;
      },
    });
    opts.hooks = {
      draw: [
        (u) => {
          drawMarkers(u, live.current.markers);
          const box = boxRef.current;
          if (box !== null) {
            box.dataset.points = String(live.current.drawn);
            box.dataset.yLabels = JSON.stringify(live.current.yLabels);
          }
          const p = live.current.pending;
          const applied = live.current.applied;
          if (p !== null && applied && applied[0] === p.range[0] && applied[1] === p.range[1]) {
            live.current.pending = null;
            p.resolve(live.current.drawn);
          }
        },
      ],
      setSelect: [
        (u) => {
          const sel = u.select;
          if (sel.width < 3) return;
          const x0 = u.posToVal(sel.left, 'x');
          const x1 = u.posToVal(sel.left + sel.width, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          const steps = stepRange(live.current.series, xMode, x0, x1);
          if (steps !== null) setRange(steps);
        },
      ],
    };
    const empty: uPlot.AlignedData = [[], ...opts.series.slice(1).map(() => [])];
    live.current.drawn = 0;
    live.current.markers = [];
    const u = new uPlot(opts, empty, mount);
    chartRef.current = u;
    const onDbl = () => setRange(null);
    u.over.addEventListener('dblclick', onDbl);
    return () => {
      u.over.removeEventListener('dblclick', onDbl);
      u.destroy();
      chartRef.current = null;
    };
  }, [structure]);

  useEffect(() => {
    const u = chartRef.current;
    if (u === null || fetched === null) return;
    const built = buildData(fetched.runs, { xMode, smoothing, logY });
    live.current.markers = built.markers;
    live.current.drawn = built.drawn;
    live.current.series = fetched.runs;
    live.current.applied = fetched.range;
    // The range is decided on the raw series (data[1..], every other one when smoothed).
    const raw = built.data.slice(1).filter((_, i) => smoothing <= 0 || i % 2 === 0);
    live.current.yRange = robustRange(raw, logY);
    setCounts((c) => (sameCounts(c, built.counts) ? c : built.counts));
    u.setData(built.data as uPlot.AlignedData, true);
  }, [fetched, structure, smoothing]);

  useEffect(
    () =>
      registerScale(tag, () => {
        const sc = chartRef.current?.scales.y;
        return { min: sc?.min ?? null, max: sc?.max ?? null };
      }),
    [tag],
  );

  useEffect(
    () =>
      registerZoom(
        tag,
        (start, end) =>
          new Promise<number>((resolve, reject) => {
            live.current.pending = { range: [start, end], resolve };
            setRange([start, end]);
            window.setTimeout(() => reject(new Error('zoom timed out')), 10000);
          }),
      ),
    [tag],
  );

  const total = counts.nan + counts['+inf'] + counts['-inf'];
  return (
    <div
      class="card scalar-card"
      data-testid="scalar-chart"
      data-tag={tag}
      data-combined={props.combined === true ? 'true' : undefined}
      ref={boxRef}
    >
      <div class="card-head">
        {props.onPick !== undefined && (
          <input
            type="checkbox"
            data-testid="combine-pick"
            title="pick tags, then “Overlay picked” to draw them on one chart"
            aria-label={`pick ${tag} to overlay`}
            checked={props.picked === true}
            onChange={(e) => props.onPick?.((e.target as HTMLInputElement).checked)}
          />
        )}
        <span class="card-title">{tag}</span>
        {range !== null && (
          <button type="button" class="link" onClick={() => setRange(null)} title="or double-click the chart">
            reset zoom (steps {range[0]}–{range[1]})
          </button>
        )}
        {props.onRemove !== undefined && (
          <button type="button" class="link" data-testid="combine-remove" onClick={props.onRemove}>
            remove
          </button>
        )}
      </div>
      <div class="plot" ref={plotRef} />
      {total > 0 && (
        <div class="nonfinite-note" data-testid="nonfinite-note">
          <span class="marker-swatch">▲◆▼</span> non-finite values: {counts.nan} NaN (◆), {counts['+inf']} +Inf (▲
          top), {counts['-inf']} −Inf (▼ bottom)
        </div>
      )}
      {error !== null && <div class="error">{error}</div>}
    </div>
  );
}

function sameCounts(a: Record<NonfiniteKind, number>, b: Record<NonfiniteKind, number>): boolean {
  return a.nan === b.nan && a['+inf'] === b['+inf'] && a['-inf'] === b['-inf'];
}

interface LineStyle {
  label: string;
  color: string;
  dash: number[];
}

const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3]];

/** Legend label, colour and dash of each line: a plain chart names runs in their colours; a
 * combined chart of one run names tags in palette colours, of several runs names
 * "run · tag" in run colours with one dash pattern per tag. */
function lineStyles(lines: readonly Line[], combined: boolean, colorOf: (run: string) => string): LineStyle[] {
  if (!combined) return lines.map((l) => ({ label: l.run, color: colorOf(l.run), dash: [] }));
  const oneRun = lines.every((l) => l.run === lines[0]?.run);
  const tags = [...new Set(lines.map((l) => l.tag))];
  return lines.map((l, i) => {
    const t = tags.indexOf(l.tag);
    return oneRun
      ? { label: l.tag, color: runColor(i), dash: [] }
      : { label: `${l.run} · ${l.tag}`, color: colorOf(l.run), dash: DASHES[t % DASHES.length] };
  });
}

interface OptionArgs {
  styles: LineStyle[];
  ignoreOutliers: boolean;
  yRange: () => [number, number] | null;
  xMode: XMode;
  logY: boolean;
  smoothed: boolean;
  width: number;
  onYLabels: (labels: string[]) => void;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v === '' ? fallback : v;
}

function chartOptions(a: OptionArgs): uPlot.Options {
  let widest = 0;
  const axisColor = cssVar('--fg-muted', '#6b7280');
  const gridColor = cssVar('--grid', 'rgba(128,128,128,0.15)');
  const series: uPlot.Series[] = [{ label: a.xMode === 'step' ? 'step' : a.xMode === 'wall' ? 'time' : 'relative' }];
  for (const { label, color, dash } of a.styles) {
    series.push({
      label,
      stroke: a.smoothed ? withAlpha(color, 0.3) : color,
      width: a.smoothed ? 1 : 1.5,
      dash,
      spanGaps: true,
      value: (_u, v) => (v === null || v === undefined ? '—' : formatValue(v)),
    });
    if (a.smoothed) {
      series.push({
        label: `${label} (smoothed)`,
        stroke: color,
        width: 1.75,
        dash,
        spanGaps: true,
        value: (_u, v) => (v === null || v === undefined ? '—' : formatValue(v)),
      });
    }
  }
  const xAxis: uPlot.Axis = { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } };
  if (a.xMode === 'relative') xAxis.values = (_u, splits) => splits.map((s) => formatDuration(s));
  return {
    width: a.width,
    height: HEIGHT,
    series,
    scales: {
      x: { time: a.xMode === 'wall' },
      y: {
        ...(a.logY ? { distr: 3 } : {}),
        range: (_u, dataMin, dataMax) => {
          const r = a.ignoreOutliers ? a.yRange() : null;
          const [lo, hi] = r ?? [dataMin, dataMax];
          if (lo === null || hi === null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
          return a.logY ? uPlot.rangeLog(lo, hi, 10, r === null) : uPlot.rangeNum(lo, hi, r === null ? 0.1 : 0.05, true);
        },
      },
    },
    axes: [
      xAxis,
      {
        stroke: axisColor,
        grid: { stroke: gridColor, width: 1 },
        ticks: { stroke: gridColor },
        font: AXIS_FONT,
        // Sized to the widest label, so long numbers never clip at the chart's left edge. uPlot
        // sizes axes in up to 3 passes; the plot height (so the ticks) can flip between two
        // label sets, and it draws the last set with an earlier pass's size: keep the widest
        // size of the passes so whichever set is drawn fits.
        size: (_u, values, _axis, cycleNum) => {
          const size = yAxisSize(values, AXIS_FONT);
          widest = cycleNum <= 1 ? size : Math.max(widest, size);
          return widest;
        },
        values: (u, splits, _axis, _space, incr) => {
          const labels = formatTicks(splits, incr, u.scales.y?.distr === 3);
          a.onYLabels(labels);
          return labels;
        },
      },
    ],
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { show: true, live: true },
  };
}
