// Graph explorer panel (issue #4): a model graph as collapsible module groups, laid out level by
// level with ELK in a worker. Rendered inside App's <section data-testid="panel-graph">.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { getJson } from '../../api';
import { layerLink, useDashboard, useLayerLink } from '../../context';
import { useBadges, useOverlayIndex, useOverlayValues } from './overlays';
import { linkedNodes, Scrubber, visibleBadges } from './overlaysView';
import { makeColorer, type ColorMode } from './colorScale';
import { NODE_STATS, nodeTensors, nodeValue, type NodeStat } from '../weights/data';
import { useGraphWeights, type GraphWeights } from '../weights/graphWeights';
import { Explorer } from './explorer';
import { GraphView, type ViewCommand } from './GraphView';
import { Inspector } from './Inspector';
import { Legend } from './Legend';
import { buildScene } from './scene';
import { SearchBox } from './SearchBox';
import { groupNamespace, type GraphEntry, type GraphSource, type SearchMatch } from './types';
import './graph.css';

const EMPTY_VALUES = new Map<string, number | null>();

export interface GraphPanelProps {
  runs: string[];
  modelMode: boolean;
}

function parseMode(v: string, weights: GraphWeights): ColorMode {
  if (v === 'none') return { kind: 'none' };
  if (v.startsWith('wt:')) {
    const stat = v.slice(3) as NodeStat;
    const label = NODE_STATS.find(([s]) => s === stat)?.[1] ?? stat;
    const names = stat === 'reldelta' ? weights.diff : weights.metas;
    return {
      kind: 'value',
      name: label,
      value: (n) => nodeValue(stat, nodeTensors(n, names.keys()), weights.metas, weights.diff),
    };
  }
  if (v.startsWith('ov:')) return { kind: 'overlay', name: v.slice(3) };
  return { kind: 'op' };
}

function useGraphs(run: string | null, modelMode: boolean): { graphs: GraphEntry[] | null; error: string | null } {
  const [graphs, setGraphs] = useState<GraphEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setGraphs(null);
    setError(null);
    if (modelMode || run === null) return;
    const ctl = new AbortController();
    getJson<{ graphs: GraphEntry[] }>('graphs', { run }, ctl.signal)
      .then((r) => setGraphs(r.graphs))
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [run, modelMode]);
  return { graphs, error };
}

export function GraphPanel(props: GraphPanelProps) {
  const [pickedRun, setPickedRun] = useState<string | null>(null);
  const run = props.modelMode ? null : pickedRun !== null && props.runs.includes(pickedRun) ? pickedRun : (props.runs[0] ?? null);
  const { graphs, error: graphsError } = useGraphs(run, props.modelMode);
  const [pickedTag, setPickedTag] = useState<string | null>(null);
  const tag =
    graphs === null ? null : graphs.some((g) => g.tag === pickedTag) ? pickedTag : (graphs[graphs.length - 1]?.tag ?? null);

  const ready = props.modelMode || (run !== null && tag !== null);
  const source: GraphSource | null = useMemo(
    () => (ready ? { run, tag, model: props.modelMode } : null),
    [ready, run, tag, props.modelMode],
  );

  const [version, setVersion] = useState(0);
  const explorer = useMemo(
    () => (source === null ? null : new Explorer(source, () => setVersion((v) => v + 1))),
    [source],
  );
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [highlightId, setHighlightId] = useState<string | null>(null);
  const [anchorId, setAnchorId] = useState<string | null>(null);
  const [command, setCommand] = useState<ViewCommand | null>(null);
  const [colorValue, setColorValue] = useState('op');
  const weights = useGraphWeights(source, colorValue.startsWith('wt:') && colorValue !== 'wt:reldelta');
  // training overlays (#18): the run's watch series, one step at a time, and event badges
  const { versions } = useDashboard();
  const overlayIndex = useOverlayIndex(props.modelMode ? null : run, tag, run === null ? 0 : (versions[run] ?? 0));
  const seriesName = colorValue.startsWith('ts:') ? colorValue.slice(3) : null;
  const series = overlayIndex?.series.find((x) => x.name === seriesName) ?? null;
  const seriesSteps = series?.steps ?? overlayIndex?.steps ?? [];
  const [stepIndex, setStepIndex] = useState<number | null>(null);
  const scrubIndex = stepIndex === null ? seriesSteps.length - 1 : Math.min(stepIndex, seriesSteps.length - 1);
  const scrubStep = scrubIndex >= 0 ? seriesSteps[scrubIndex] : null;
  const stepValues = useOverlayValues(run, tag, series?.name ?? null, scrubStep, seriesSteps);
  const badges = useBadges(overlayIndex, stepIndex === null && series === null ? null : scrubStep);
  const link = useLayerLink();

  useEffect(() => {
    setSelectedId(null);
    setHighlightId(null);
    setError(null);
    if (explorer === null) return;
    setBusy(true);
    explorer
      .open()
      .catch((e: unknown) => setError(String(e)))
      .finally(() => setBusy(false));
  }, [explorer]);

  const scene = useMemo(() => buildScene(explorer), [explorer, version]);
  const mode: ColorMode =
    series !== null
      ? { kind: 'series', name: series.label, values: stepValues?.values ?? EMPTY_VALUES, step: stepValues?.step ?? null }
      : parseMode(colorValue, weights);
  const colorer = useMemo(
    () => makeColorer(mode, scene.nodes.map((s) => s.node)),
    [colorValue, scene, weights, series, stepValues],
  );
  const shownBadges = useMemo(() => visibleBadges(scene, badges), [scene, badges]);
  const linkedIds = useMemo(() => linkedNodes(scene, link.hover), [scene, link.hover]);

  // Another panel asked to show a layer (an event's "show in graph"): switch to its run,
  // reveal its node, select and centre it.
  const focus = link.selected?.focus;
  useEffect(() => {
    const want = link.selected;
    if (want === null || want.focus === undefined || props.modelMode) return;
    if (want.run !== null && want.run !== run && props.runs.includes(want.run)) {
      setPickedRun(want.run);
      return;
    }
    if (explorer === null || !explorer.levels.has('') || busy) return;
    if (want.eventId !== undefined && overlayIndex === null) return; // its badge names the node
    const badge = overlayIndex?.badges.find((b) => b.id === want.eventId && b.nodes.length > 0);
    const id = badge?.nodes[0] ?? want.nodes?.[0] ?? `ns:${want.layer}`;
    const namespace = badge?.namespaces[0] ?? explorer.nodes.get(id)?.namespace ?? want.layer;
    layerLink.select({ run, layer: namespace, nodes: [id] });
    reveal({ id, label: '', op: '', namespace });
  }, [focus, explorer, run, busy, version, overlayIndex]);

  const toggle = (id: string) => {
    const ns = groupNamespace(id);
    if (explorer === null || ns === null) return;
    setAnchorId(id);
    setBusy(true);
    explorer
      .toggle(ns)
      .then(() => setError(null))
      .catch((e: unknown) => setError(String(e)))
      .finally(() => setBusy(false));
  };

  const reveal = (m: SearchMatch) => {
    if (explorer === null) return;
    setAnchorId(null);
    setBusy(true);
    explorer
      .reveal(m)
      .then((id) => {
        setSelectedId(id);
        setHighlightId(id);
        setCommand((c) => ({ kind: 'center', id, seq: (c?.seq ?? 0) + 1 }));
        setError(null);
      })
      .catch((e: unknown) => setError(String(e)))
      .finally(() => setBusy(false));
  };

  if (!props.modelMode && props.runs.length === 0) {
    return <div class="empty">Select a run to see its model graph.</div>;
  }
  if (graphs !== null && graphs.length === 0) {
    return <div class="empty">{`Run ${run ?? ''} has no graph. Log one with run.log_graph(model, example_inputs).`}</div>;
  }
  const selected = selectedId === null ? null : (explorer?.nodes.get(selectedId) ?? null);
  const selectedNs = selectedId === null ? null : groupNamespace(selectedId);
  const overlayNames = explorer?.overlayNames ?? [];

  return (
    <div
      class="gx-panel"
      data-testid="graph-explorer"
      data-busy={busy ? 'true' : 'false'}
      data-layout-elk={explorer?.stats.elkCalls ?? 0}
      data-layout-cached={explorer?.stats.cacheHits ?? 0}
    >
      <div class="gx-toolbar">
        {!props.modelMode && props.runs.length > 1 && (
          <select data-testid="graph-run" value={run ?? ''} onChange={(e) => setPickedRun((e.target as HTMLSelectElement).value)}>
            {props.runs.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        )}
        {graphs !== null && graphs.length > 1 && (
          <select data-testid="graph-select" value={tag ?? ''} onChange={(e) => setPickedTag((e.target as HTMLSelectElement).value)}>
            {graphs.map((g) => (
              <option key={g.id} value={g.tag}>
                {g.step === null ? g.tag : `${g.tag} @ ${g.step}`}
              </option>
            ))}
          </select>
        )}
        {source !== null && <SearchBox source={source} onPick={reveal} />}
        <label class="gx-color">
          Colour
          <select data-testid="graph-color" value={colorValue} onChange={(e) => setColorValue((e.target as HTMLSelectElement).value)}>
            <option value="op">op type</option>
            <option value="none">none</option>
            {overlayNames.map((n) => (
              <option key={n} value={`ov:${n}`}>
                {n}
              </option>
            ))}
            {(overlayIndex?.series ?? []).map((x) => (
              <option key={`ts:${x.name}`} value={`ts:${x.name}`}>
                {x.label}
              </option>
            ))}
            {weights.mode !== 'none' &&
              NODE_STATS.filter(([s]) => s !== 'reldelta' || weights.mode === 'diff').map(([s, label]) => (
                <option key={s} value={`wt:${s}`}>
                  {label}
                </option>
              ))}
          </select>
        </label>
        {series !== null && (
          <Scrubber steps={seriesSteps} index={scrubIndex} shownStep={stepValues?.step ?? null} onIndex={(i) => setStepIndex(i)} />
        )}
        <button type="button" data-testid="graph-fit" onClick={() => setCommand((c) => ({ kind: 'fit', seq: (c?.seq ?? 0) + 1 }))}>
          Fit
        </button>
        <span class="gx-status" data-testid="graph-status">
          {busy ? 'loading…' : `${scene.nodes.length} nodes`}
        </span>
        {(explorer?.truncated().length ?? 0) > 0 && (
          <span class="gx-error" data-testid="graph-truncated">
            {`some levels show only their first ${explorer?.levels.get(explorer.truncated()[0])?.nodes.length ?? ''} nodes`}
          </span>
        )}
        {(error ?? graphsError) !== null && <span class="gx-error">{error ?? graphsError}</span>}
      </div>
      <Legend mode={mode} colorer={colorer} scene={scene} />
      <div class="gx-body">
        <div class="gx-view">
          <GraphView
            scene={scene}
            colorer={colorer}
            selectedId={selectedId}
            highlightId={highlightId}
            anchorId={anchorId}
            command={command}
            onSelect={(id) => {
              setSelectedId(id);
              if (id !== highlightId) setHighlightId(null);
              const n = id === null ? undefined : explorer?.nodes.get(id);
              const ns = id === null ? null : (groupNamespace(id) ?? n?.namespace ?? null);
              layerLink.select(id === null || !ns ? null : { run, layer: ns, nodes: [id] });
            }}
            badges={shownBadges}
            linkedIds={linkedIds}
            onToggle={toggle}
            onHoverGroup={(id) => {
              const ns = groupNamespace(id);
              if (ns !== null) explorer?.prefetch(ns);
            }}
          />
        </div>
        <Inspector
          node={selected}
          expanded={selectedNs !== null && (explorer?.isExpanded(selectedNs) ?? false)}
          busy={busy}
          onToggle={toggle}
          weights={weights}
          run={props.modelMode ? null : run}
          overlay={
            series !== null && run !== null
              ? { run, tag, series: series.name, label: series.label, step: stepValues?.step ?? null, values: stepValues?.values ?? null }
              : null
          }
        />
      </div>
    </div>
  );
}
