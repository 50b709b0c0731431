import { useState } from 'preact/hooks';
import { inLayer, layerLink, layerOfTag, useDashboard, useLayerLink } from '../../context';
import { hoverLayerOfTag, LayerChip } from '../graph/overlaysView';
import { useTagGroups } from '../../hooks';
import type { HistogramMode } from './draw';
import { HistogramChart } from './HistogramChart';

export function HistogramsPanel() {
  const { selected } = useDashboard();
  const { groups: all, error, loading } = useTagGroups('histogram');
  const scope = useLayerLink().selected?.layer ?? null; // the graph's selection (#18)
  const groups = scope === null ? all : all.filter((g) => inLayer(layerOfTag(g.tag), scope));
  const [mode, setMode] = useState<HistogramMode>('offset');
  return (
    <section class="panel" data-testid="panel-histograms">
      <div class="toolbar">
        <label class="control">
          View
          <select
            data-testid="histogram-mode"
            value={mode}
            onChange={(e) => setMode((e.target as HTMLSelectElement).value as HistogramMode)}
          >
            <option value="offset">Offset (ridgelines over steps)</option>
            <option value="distribution">Distribution (percentile bands)</option>
          </select>
        </label>
        {scope !== null && <LayerChip layer={scope} onClear={() => layerLink.select(null)} />}
      </div>
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : !loading && groups.length === 0 ? (
        <div class="empty">
          {scope === null ? 'No histograms logged in the selected runs.' : `No histograms of layer ${scope}.`}
        </div>
      ) : (
        <div class="chart-grid" onMouseOver={hoverLayerOfTag} onMouseLeave={() => layerLink.hover(null)}>
          {groups.map((g) => (
            <HistogramChart key={g.tag} tag={g.tag} runs={g.runs} mode={mode} />
          ))}
        </div>
      )}
    </section>
  );
}
