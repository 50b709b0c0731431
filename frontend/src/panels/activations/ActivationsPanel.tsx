// The dashboard's Activations panel: pick a run's logged activations (`run.log_activations`,
// view kind `activations`), a layer, an input item and a step; the layer output is fetched
// as a binary array (`fetchArray`, decoded in place) and drawn by `FeatureGrid`. A run with
// several logged tags (of activations, or of unit stats) gets a tag selector for each. Deep
// link: `#/activations?run=…&tag=…&units=…&layer=…&item=…`.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { blobUrl } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { hashParams, setHashParams } from '../../route';
import { fetchArray, fetchView } from '../../views/registry';
import type { WireArray } from '../../wire/envelope';
import type { ActivationsItem, ActivationsView, UnitStatsItem } from '../../wire/types';
import { CMAPS, type CmapName } from './colormap';
import { FeatureGrid } from './FeatureGrid';
import { fmt } from './maps';
import { UnitTable } from './UnitTable';
import './activations.css';

export function ActivationsPanel() {
  const { selected } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const [views, setViews] = useState<Record<string, ActivationsView>>({});
  const [unitViews, setUnitViews] = useState<Record<string, UnitStatsItem[]>>({});
  const [error, setError] = useState<string | null>(null);
  const key = selected.join('\u0000');
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(selected.map((run) => fetchView('activations', run, {}, ctl.signal)))
      .then((all) => {
        setViews(Object.fromEntries(all.map((v) => [v.run, v])));
        setError(null);
      })
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    // a run with unit statistics only still gets its tables
    Promise.all(
      selected.map((run) =>
        fetchView('unit_stats', run, {}, ctl.signal).then((v) => [run, v.items] as const, () => [run, []] as const),
      ),
    ).then((all) => !ctl.signal.aborted && setUnitViews(Object.fromEntries(all)));
    return () => ctl.abort();
  }, [key, version]);
  const withItems = selected.filter((r) => (views[r]?.items.length ?? 0) > 0 || (unitViews[r]?.length ?? 0) > 0);
  const linked = hashParams(location.hash);
  const [run, setRun] = useState<string | null>(linked.get('run'));
  const shown = run !== null && withItems.includes(run) ? run : withItems[0];
  return (
    <section class="panel" data-testid="panel-activations">
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : shown === undefined ? (
        <div class="empty" data-testid="activations-empty">
          No activations logged in the selected runs (run.log_activations).
        </div>
      ) : (
        <RunActivations
          key={shown}
          view={views[shown] ?? { kind: 'activations', run: shown, items: [], skipped: 0 }}
          allUnits={unitViews[shown] ?? []}
          runs={withItems}
          onRun={(r) => {
            setRun(r);
            setHashParams('activations', { run: r, tag: null, units: null, layer: null, item: null });
          }}
        />
      )}
    </section>
  );
}

/** The distinct tags of `items`, in logging order. */
function tagsOf(items: { tag: string }[]): string[] {
  return [...new Set(items.map((i) => i.tag))];
}

function TagSelect({ label, testid, tags, value, onPick }: {
  label: string; testid: string; tags: string[]; value: string | undefined; onPick: (t: string) => void;
}) {
  if (tags.length < 2) return null;
  return (
    <label class="control">
      {label}
      <select data-testid={testid} value={value} onChange={(e) => onPick((e.target as HTMLSelectElement).value)}>
        {tags.map((t) => (
          <option key={t} value={t}>
            {t}
          </option>
        ))}
      </select>
    </label>
  );
}

function RunActivations({ view, allUnits, runs, onRun }: {
  view: ActivationsView; allUnits: UnitStatsItem[]; runs: string[]; onRun: (r: string) => void;
}) {
  const { colorOf } = useDashboard();
  const { run } = view;
  const linked = hashParams(location.hash);
  const tags = useMemo(() => tagsOf(view.items), [view.items]);
  const [tag, setTag] = useState<string | null>(linked.get('tag'));
  const tagShown = tag !== null && tags.includes(tag) ? tag : tags[0];
  const items = useMemo(() => view.items.filter((i) => i.tag === tagShown), [view.items, tagShown]);
  const unitTags = useMemo(() => tagsOf(allUnits), [allUnits]);
  const [unitTag, setUnitTag] = useState<string | null>(linked.get('units'));
  const unitTagShown = unitTag !== null && unitTags.includes(unitTag) ? unitTag : unitTags[0];
  const units = useMemo(() => allUnits.filter((u) => u.tag === unitTagShown), [allUnits, unitTagShown]);
  const [layer, setLayer] = useState<string | null>(linked.get('layer'));
  const [index, setIndex] = useState<number | null>(linked.has('item') ? Number(linked.get('item')) : null);
  const [step, setStep] = useState<number | null>(null);
  const [cmap, setCmap] = useState<CmapName>('viridis');


  const steps = useMemo(() => [...new Set(items.map((i) => i.step))].sort((a, b) => a - b), [items]);
  const atStep = step !== null && steps.includes(step) ? step : steps[steps.length - 1];
  const here = useMemo(() => items.filter((i) => i.step === atStep), [items, atStep]);
  const layers = useMemo(() => {
    const seen = new Map<string, ActivationsItem>();
    for (const i of here) if (!seen.has(i.meta.layer)) seen.set(i.meta.layer, i);
    return [...seen.values()];
  }, [here]);
  const unitLayers = useMemo(() => [...new Set(units.map((u) => u.meta.layer))], [units]);
  const layerNames = layers.length > 0 ? layers.map((l) => l.meta.layer) : unitLayers;
  const layerShown = layer !== null && layerNames.includes(layer) ? layer : layerNames[0];
  const indices = useMemo(
    () => [...new Set(here.filter((i) => i.meta.layer === layerShown).map((i) => i.meta.index))].sort((a, b) => a - b),
    [here, layerShown],
  );
  const indexShown = index !== null && indices.includes(index) ? index : indices[0];
  const item = here.find((i) => i.meta.layer === layerShown && i.meta.index === indexShown);
  const unitItem = units.filter((u) => u.meta.layer === layerShown).pop();

  const pickLayer = (l: string) => {
    setLayer(l);
    setHashParams('activations', { run, layer: l });
  };
  const pickIndex = (n: number) => {
    setIndex(n);
    setHashParams('activations', { run, item: String(n) });
  };

  return (
    <div class="card act-card" data-testid="activations-card" data-run={run}>
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(run) }} />
        <label class="control">
          run
          <select data-testid="act-run" value={run} onChange={(e) => onRun((e.target as HTMLSelectElement).value)}>
            {runs.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <TagSelect label="tag" testid="act-tag" tags={tags} value={tagShown}
          onPick={(t) => {
            setTag(t);
            setHashParams('activations', { run, tag: t, layer: null, item: null });
          }} />
        <TagSelect label="units" testid="act-units-tag" tags={unitTags} value={unitTagShown}
          onPick={(t) => {
            setUnitTag(t);
            setHashParams('activations', { run, units: t });
          }} />
        <label class="control">
          input
          <select data-testid="act-item" value={String(indexShown)}
            onChange={(e) => pickIndex(Number((e.target as HTMLSelectElement).value))}>
            {indices.map((n) => (
              <option key={n} value={String(n)}>
                #{n}
              </option>
            ))}
          </select>
        </label>
        <label class="control">
          step
          <select data-testid="act-step" value={String(atStep)}
            onChange={(e) => setStep(Number((e.target as HTMLSelectElement).value))}>
            {steps.map((s) => (
              <option key={s} value={String(s)}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label class="control">
          colormap
          <select data-testid="act-cmap" value={cmap} onChange={(e) => setCmap((e.target as HTMLSelectElement).value as CmapName)}>
            {CMAPS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div class="act-layout">
        <nav class="act-layers" data-testid="act-layers">
          {layers.map((l) => (
            <button key={l.meta.layer} type="button" class={l.meta.layer === layerShown ? 'active' : ''}
              data-testid="act-layer" data-layer={l.meta.layer} onClick={() => pickLayer(l.meta.layer)}>
              {l.meta.layer}
              <div class="muted">
                {l.meta.module} {l.meta.shape.join('×')}
              </div>
            </button>
          ))}
          {layers.length === 0 &&
            unitLayers.map((name) => (
              <button key={name} type="button" class={name === layerShown ? 'active' : ''}
                data-testid="act-layer" data-layer={name} onClick={() => pickLayer(name)}>
                {name}
                <div class="muted">unit statistics</div>
              </button>
            ))}
        </nav>
        <div class="act-body">
          {item ? (
            <ItemMaps key={item.id} run={run} item={item} cmap={cmap} />
          ) : (
            layers.length > 0 && <div class="empty">nothing logged here</div>
          )}
          {unitItem && <UnitTable key={unitItem.id} run={run} item={unitItem} blobUrl={blobUrl(run, unitItem.id)} />}
        </div>
      </div>
    </div>
  );
}

function ItemMaps({ run, item, cmap }: { run: string; item: ActivationsItem; cmap: CmapName }) {
  const [arr, setArr] = useState<WireArray | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ref = item.parts.maps;
  useEffect(() => {
    if (ref === null) return;
    const ctl = new AbortController();
    fetchArray('activations', run, ref.id, undefined, ctl.signal)
      .then(setArr)
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [run, ref?.id]);
  const { meta } = item;
  return (
    <div class="act-body" data-testid="act-item-maps" data-layer={meta.layer} data-index={meta.index}>
      <div class="muted num">
        {meta.layer} · input #{meta.index} · {meta.shape.join('×')} ({meta.layout}) · range [{fmt(meta.min)}, {fmt(meta.max)}]
      </div>
      {ref === null && <div class="error">the array of this item was not logged</div>}
      {error !== null && <div class="error">{error}</div>}
      {arr !== null && <FeatureGrid arr={arr} layout={meta.layout} lo={meta.min} hi={meta.max} cmap={cmap} />}
    </div>
  );
}
