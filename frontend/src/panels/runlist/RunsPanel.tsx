import { useMemo, useState } from 'preact/hooks';
import type { RunInfo } from '../../api';
import { useDashboard } from '../../context';
import { formatTime, formatValue } from '../../format';

/** The rows of the run list: single runs, and each group's ranks under one header row. */
type Entry = { kind: 'run'; run: RunInfo } | { kind: 'group'; group: string; ranks: RunInfo[] };

/** Runs in list order; the ranks of a distributed job (`deepscope.init(group=...)`) are
 * gathered, ordered by rank, where the group's first run would be. */
export function groupRuns(runs: RunInfo[]): Entry[] {
  const out: Entry[] = [];
  const groups = new Map<string, RunInfo[]>();
  for (const r of runs) {
    if (r.group === undefined) {
      out.push({ kind: 'run', run: r });
      continue;
    }
    let ranks = groups.get(r.group);
    if (ranks === undefined) {
      ranks = [];
      groups.set(r.group, ranks);
      out.push({ kind: 'group', group: r.group, ranks });
    }
    ranks.push(r);
  }
  for (const ranks of groups.values()) ranks.sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
  return out;
}

export function RunsPanel() {
  const { runs, selected, setSelected, colorOf } = useDashboard();
  const [filter, setFilter] = useState('');
  const visible = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return f === ''
      ? runs
      : runs.filter(
          (r) => r.name.toLowerCase().includes(f) || (r.group ?? '').toLowerCase().includes(f),
        );
  }, [runs, filter]);
  const entries = useMemo(() => groupRuns(visible), [visible]);
  const selectedSet = new Set(selected);

  /** Select (or drop) `names` together, keeping the list's order. */
  const setMany = (names: string[], on: boolean) => {
    const these = new Set(names);
    setSelected(
      runs.map((r) => r.name).filter((n) => (these.has(n) ? on : selectedSet.has(n))),
    );
  };
  const toggle = (name: string) => setMany([name], !selectedSet.has(name));

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
            {entries.map((e) =>
              e.kind === 'run' ? (
                <RunRow
                  key={e.run.name}
                  run={e.run}
                  color={colorOf(e.run.name)}
                  checked={selectedSet.has(e.run.name)}
                  onToggle={() => toggle(e.run.name)}
                />
              ) : (
                <GroupRows
                  key={`group:${e.group}`}
                  group={e.group}
                  ranks={e.ranks}
                  selected={selectedSet}
                  colorOf={colorOf}
                  onToggle={toggle}
                  onToggleAll={(on) => setMany(e.ranks.map((r) => r.name), on)}
                />
              ),
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** A group's header row (a checkbox that selects or drops all its ranks, and a status count),
 * then one row per rank. */
function GroupRows(props: {
  group: string;
  ranks: RunInfo[];
  selected: Set<string>;
  colorOf: (run: string) => string;
  onToggle: (name: string) => void;
  onToggleAll: (on: boolean) => void;
}) {
  const { group, ranks, selected } = props;
  const on = ranks.filter((r) => selected.has(r.name)).length;
  const counts = new Map<string, number>();
  for (const r of ranks) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const summary = [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
  const started = Math.min(...ranks.map((r) => r.created || Infinity));
  const beat = Math.max(...ranks.map((r) => r.heartbeat || 0));
  return (
    <>
      <tr data-testid="run-group" data-group={group} data-ranks={ranks.length}>
        <td>
          <input
            type="checkbox"
            data-testid="group-toggle"
            aria-label={`show every rank of ${group}`}
            checked={on === ranks.length}
            ref={(el) => {
              if (el) el.indeterminate = on > 0 && on < ranks.length;
            }}
            onChange={() => props.onToggleAll(on < ranks.length)}
          />
        </td>
        <td class="run-name" style={{ fontWeight: 600 }}>
          <span data-testid="group-name">{group}</span>
          <span class="muted" style={{ fontWeight: 400, marginLeft: '8px' }}>
            {ranks.length} {ranks.length === 1 ? 'rank' : 'ranks'}
          </span>
        </td>
        <td class="muted">{summary}</td>
        <td class="num">{Number.isFinite(started) ? formatTime(started) : '—'}</td>
        <td class="num">{beat ? formatTime(beat) : '—'}</td>
        <td />
      </tr>
      {ranks.map((r) => (
        <RunRow
          key={r.name}
          run={r}
          color={props.colorOf(r.name)}
          checked={selected.has(r.name)}
          onToggle={() => props.onToggle(r.name)}
          indent
        />
      ))}
    </>
  );
}

/** A run the server could not read comes as status "unreadable" with an `error` reason. */
type ListedRun = RunInfo & { error?: string };

function RunRow(props: {
  run: RunInfo;
  color: string;
  checked: boolean;
  onToggle: () => void;
  indent?: boolean;
}) {
  const run: ListedRun = props.run;
  // A rank's place in its job is shown by its group row; the rest of the config as before.
  const entries = Object.entries(run.config ?? {}).filter(
    ([k]) => !(props.indent && k === 'deepscope'),
  );
  const unreadable = (run.status as string) === 'unreadable';
  return (
    <tr
      data-testid="run-row"
      data-run={run.name}
      data-status={run.status}
      data-group={run.group}
      data-rank={run.rank}
    >
      <td>
        <input
          type="checkbox"
          data-testid="run-toggle"
          aria-label={`show run ${run.name}`}
          checked={props.checked}
          onChange={props.onToggle}
        />
      </td>
      <td class="run-name" style={props.indent ? { paddingLeft: '22px' } : undefined}>
        <span class="swatch" style={{ background: props.color }} />
        <span data-testid="run-name">{run.name}</span>
        {props.indent && run.rank !== undefined ? (
          <span class="muted" style={{ marginLeft: '6px' }}>
            rank {run.rank}
          </span>
        ) : null}
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
