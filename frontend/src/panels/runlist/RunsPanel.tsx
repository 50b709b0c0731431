import { useMemo, useState } from 'preact/hooks';
import type { RunInfo } from '../../api';
import { useDashboard } from '../../context';
import { formatTime, formatValue } from '../../format';

export function RunsPanel() {
  const { runs, selected, setSelected, colorOf } = useDashboard();
  const [filter, setFilter] = useState('');
  const visible = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return f === '' ? runs : runs.filter((r) => r.name.toLowerCase().includes(f));
  }, [runs, filter]);
  const selectedSet = new Set(selected);

  const toggle = (name: string) => {
    const next = selectedSet.has(name)
      ? selected.filter((n) => n !== name)
      : runs.map((r) => r.name).filter((n) => n === name || selectedSet.has(n));
    setSelected(next);
  };

  return (
    <section class="panel" data-testid="panel-runs">
      <div class="toolbar">
        <input
          type="search"
          class="filter"
          placeholder="Filter runs"
          aria-label="Filter runs"
          data-testid="run-filter"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
        <button type="button" onClick={() => setSelected(visible.map((r) => r.name))}>
          Select shown
        </button>
        <button type="button" onClick={() => setSelected([])}>
          Select none
        </button>
        <span class="muted">
          {visible.length} of {runs.length} runs
        </span>
      </div>
      {runs.length === 0 ? (
        <div class="empty">No runs in this log directory yet.</div>
      ) : (
        <table class="grid runs-table">
          <thead>
            <tr>
              <th />
              <th>Run</th>
              <th>Status</th>
              <th>Started</th>
              <th>Last heartbeat</th>
              <th>Config</th>
            </tr>
          </thead>
          <tbody>
            {visible.map((r) => (
              <RunRow
                key={r.name}
                run={r}
                color={colorOf(r.name)}
                checked={selectedSet.has(r.name)}
                onToggle={() => toggle(r.name)}
              />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** A run the server could not read comes as status "unreadable" with an `error` reason. */
type ListedRun = RunInfo & { error?: string };

function RunRow(props: { run: RunInfo; color: string; checked: boolean; onToggle: () => void }) {
  const run: ListedRun = props.run;
  const entries = Object.entries(run.config ?? {});
  const unreadable = (run.status as string) === 'unreadable';
  return (
    <tr data-testid="run-row" data-run={run.name} data-status={run.status}>
      <td>
        <input
          type="checkbox"
          data-testid="run-toggle"
          aria-label={`show run ${run.name}`}
          checked={props.checked}
          onChange={props.onToggle}
        />
      </td>
      <td class="run-name">
        <span class="swatch" style={{ background: props.color }} />
        <span data-testid="run-name">{run.name}</span>
      </td>
      <td>
        <span
          class={`badge badge-${run.status}`}
          style={unreadable ? { color: 'var(--warn)' } : undefined}
          title={unreadable ? run.error : undefined}
        >
          {run.status}
        </span>
      </td>
      <td class="num">{run.created ? formatTime(run.created) : '—'}</td>
      <td class="num">{run.heartbeat ? formatTime(run.heartbeat) : '—'}</td>
      <td>
        {unreadable ? (
          <span class="muted" data-testid="run-error">
            {run.error ?? 'run.db cannot be read'}
          </span>
        ) : entries.length === 0 ? (
          <span class="muted">—</span>
        ) : (
          <table class="config" data-testid="run-config">
            <tbody>
              {entries.map(([k, v]) => (
                <tr key={k}>
                  <th>{k}</th>
                  <td>{formatConfig(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </td>
    </tr>
  );
}

function formatConfig(v: unknown): string {
  if (typeof v === 'number') return formatValue(v);
  if (typeof v === 'string') return v;
  return JSON.stringify(v) ?? String(v);
}
