import { useEffect, useMemo, useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { inLayer, layerLink, layerOfTag, useLayerLink } from '../../context';
import { useTagGroups, type TagGroup } from '../../hooks';
import { hoverLayerOfTag, LayerChip } from '../graph/overlaysView';
import { sections, type Section } from './groups';
import { ScalarChart, type Line } from './ScalarChart';
import type { XMode } from './series';

const COMBINED_KEY = 'deepscope.scalars.combined';

interface View {
  xMode: XMode;
  smoothing: number;
  logY: boolean;
  ignoreOutliers: boolean;
}

function loadCombined(): string[][] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(COMBINED_KEY) ?? '[]');
    return Array.isArray(v)
      ? v.filter((t): t is string[] => Array.isArray(t) && t.every((x) => typeof x === 'string'))
      : [];
  } catch {
    return [];
  }
}

function saveCombined(sets: string[][]): void {
  try {
    localStorage.setItem(COMBINED_KEY, JSON.stringify(sets));
  } catch {
    // storage off (private mode): the combined charts last for this page only
  }
}

export function ScalarsPanel() {
  const { selected } = useDashboard();
  const { groups, error, loading } = useTagGroups('scalar');
  const [smoothing, setSmoothing] = useState(0);
  const [logY, setLogY] = useState(false);
  const [ignoreOutliers, setIgnoreOutliers] = useState(true);
  const [xMode, setXMode] = useState<XMode>('step');
  const [filter, setFilter] = useState('');
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const [picked, setPicked] = useState<string[]>([]);
  const [combined, setCombined] = useState<string[][]>(loadCombined);
  useEffect(() => saveCombined(combined), [combined]);
  const f = filter.trim().toLowerCase();
  const scope = useLayerLink().selected?.layer ?? null; // the graph's selection (#18)
  const shown = groups.filter(
    (g) => (f === '' || g.tag.toLowerCase().includes(f)) && (scope === null || inLayer(layerOfTag(g.tag), scope)),
  );
  const secs = useMemo(() => sections(shown), [shown]);
  const view: View = { xMode, smoothing, logY, ignoreOutliers };
  const runsOf = new Map(groups.map((g) => [g.tag, g.runs]));
  const isOpen = (s: Section) => open[s.prefix] ?? (f !== '' || scope !== null || !s.watch);

  const pick = (tag: string, on: boolean) =>
    setPicked((p) => (on ? (p.includes(tag) ? p : [...p, tag]) : p.filter((t) => t !== tag)));

  return (
    <section class="panel" data-testid="panel-scalars">
      <div class="toolbar">
        <label class="control">
          Smoothing
          <input
            type="range"
            min="0"
            max="0.99"
            step="0.01"
            data-testid="smoothing"
            value={smoothing}
            onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))}
          />
          <span class="num">{smoothing.toFixed(2)}</span>
        </label>
        <label class="control">
          <input
            type="checkbox"
            data-testid="log-y"
            checked={logY}
            onChange={(e) => setLogY((e.target as HTMLInputElement).checked)}
          />
          Log y
        </label>
        <label class="control" title="fit the y axis to the 5th–95th percentile of the values (and those near it)">
          <input
            type="checkbox"
            data-testid="ignore-outliers"
            checked={ignoreOutliers}
            onChange={(e) => setIgnoreOutliers((e.target as HTMLInputElement).checked)}
          />
          Ignore outliers
        </label>
        <label class="control">
          X axis
          <select
            data-testid="x-axis"
            value={xMode}
            onChange={(e) => setXMode((e.target as HTMLSelectElement).value as XMode)}
          >
            <option value="step">Step</option>
            <option value="wall">Wall time</option>
            <option value="relative">Relative</option>
          </select>
        </label>
        <input
          type="search"
          class="filter"
          placeholder="Filter tags"
          aria-label="Filter tags"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
        <button
          type="button"
          data-testid="combine-apply"
          disabled={picked.length < 2}
          title="draw the picked tags (tick their boxes) on one chart"
          onClick={() => {
            setCombined((c) => [...c, picked]);
            setPicked([]);
          }}
        >
          Overlay picked{picked.length > 0 ? ` (${picked.length})` : ''}
        </button>
        {scope !== null && <LayerChip layer={scope} onClear={() => layerLink.select(null)} />}
        <span class="muted">drag to zoom · double-click to reset</span>
      </div>
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : !loading && shown.length === 0 ? (
        <div class="empty">No scalars logged in the selected runs.</div>
      ) : (
        <>
          {combined.length > 0 && (
            <div class="scalar-section" data-testid="scalar-section" data-prefix="(combined)" data-collapsed="false">
              <div class="section-head">
                <span class="section-title">combined</span>
                <span class="muted">{combined.length}</span>
              </div>
              <div class="chart-grid">
                {combined.map((tags, i) => (
                  <ScalarChart
                    key={`${i}:${tags.join('\u0000')}`}
                    id={tags.join(' + ')}
                    combined
                    lines={tags.flatMap((tag) => (runsOf.get(tag) ?? []).map((run): Line => ({ run, tag })))}
                    onRemove={() => setCombined((c) => c.filter((_, j) => j !== i))}
                    {...view}
                  />
                ))}
              </div>
            </div>
          )}
          {secs.map((s) => (
            <TagSection
              key={s.prefix}
              section={s}
              open={isOpen(s)}
              onToggle={() => setOpen((o) => ({ ...o, [s.prefix]: !isOpen(s) }))}
              view={view}
              picked={picked}
              onPick={pick}
            />
          ))}
        </>
      )}
    </section>
  );
}

interface SectionProps {
  section: Section;
  open: boolean;
  onToggle: () => void;
  view: View;
  picked: string[];
  onPick: (tag: string, on: boolean) => void;
}

function TagSection({ section, open, onToggle, view, picked, onPick }: SectionProps) {
  return (
    <div
      onMouseOver={hoverLayerOfTag}
      onMouseLeave={() => layerLink.hover(null)}
      class="scalar-section"
      data-testid="scalar-section"
      data-prefix={section.prefix}
      data-collapsed={open ? 'false' : 'true'}
    >
      <button type="button" class="section-head" data-testid="section-toggle" aria-expanded={open} onClick={onToggle}>
        <span class="section-caret">{open ? '▾' : '▸'}</span>
        <span class="section-title">{section.title}</span>
        <span class="muted">
          {section.groups.length} {section.groups.length === 1 ? 'chart' : 'charts'}
          {section.watch ? ' · run.watch' : ''}
        </span>
      </button>
      {open && (
        <div class="chart-grid">
          {section.groups.map((g: TagGroup) => (
            <ScalarChart
              key={g.tag}
              id={g.tag}
              lines={g.runs.map((run) => ({ run, tag: g.tag }))}
              picked={picked.includes(g.tag)}
              onPick={(on) => onPick(g.tag, on)}
              {...view}
            />
          ))}
        </div>
      )}
    </div>
  );
}
