import { useState } from 'preact/hooks';
import { useDashboard } from '../../context';
import { useTagGroups } from '../../hooks';
import { ScalarChart } from './ScalarChart';
import type { XMode } from './series';

export function ScalarsPanel() {
  const { selected } = useDashboard();
  const { groups, error, loading } = useTagGroups('scalar');
  const [smoothing, setSmoothing] = useState(0);
  const [logY, setLogY] = useState(false);
  const [xMode, setXMode] = useState<XMode>('step');
  const [filter, setFilter] = useState('');
  const f = filter.trim().toLowerCase();
  const shown = f === '' ? groups : groups.filter((g) => g.tag.toLowerCase().includes(f));

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
        <span class="muted">drag to zoom · double-click to reset</span>
      </div>
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : !loading && shown.length === 0 ? (
        <div class="empty">No scalars logged in the selected runs.</div>
      ) : (
        <div class="chart-grid">
          {shown.map((g) => (
            <ScalarChart
              key={g.tag}
              tag={g.tag}
              runs={g.runs}
              xMode={xMode}
              smoothing={smoothing}
              logY={logY}
            />
          ))}
        </div>
      )}
    </section>
  );
}
