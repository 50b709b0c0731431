import { useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { useTagGroups } from '../../hooks';
import type { HistogramMode } from './draw';
import { HistogramChart } from './HistogramChart';

export function HistogramsPanel() {
  const { selected } = useDashboard();
  const { groups, error, loading } = useTagGroups('histogram');
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
      </div>
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : !loading && groups.length === 0 ? (
        <div class="empty">No histograms logged in the selected runs.</div>
      ) : (
        <div class="chart-grid">
          {groups.map((g) => (
            <HistogramChart key={g.tag} tag={g.tag} runs={g.runs} mode={mode} />
          ))}
        </div>
      )}
    </section>
  );
}
