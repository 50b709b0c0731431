import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, type EventInfo } from '../../api';
import { eventInLayer, layerLink, namespaceOf, useDashboard, useLayerLink } from '../../context';
import { openGraphTab } from '../graph/overlays';
import { LayerChip } from '../graph/overlaysView';
import { formatTime } from '../../format';
import { useDebounced, useRunsVersion } from '../../hooks';
import { TextLogs } from './TextLogs';

const LIMIT = 1000;

export function EventsPanel() {
  const { selected, colorOf } = useDashboard();
  const version = useDebounced(useRunsVersion(selected), 300);
  const [events, setEvents] = useState<EventInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [severity, setSeverity] = useState('all');
  const key = selected.join('\u0000');

  useEffect(() => {
    if (selected.length === 0) {
      setEvents([]);
      return;
    }
    const ctl = new AbortController();
    api
      .events(selected, LIMIT, ctl.signal)
      .then((r) => {
        setEvents(r.events);
        setError(null);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setError(String(e));
      });
    return () => ctl.abort();
  }, [key, version]);

  const link = useLayerLink();
  const scope = link.selected?.layer ?? null;
  const shown = useMemo(
    () =>
      (events ?? []).filter(
        (e) => (severity === 'all' || e.severity === severity) && (scope === null || eventInLayer(e.layer, scope)),
      ),
    [events, severity, scope],
  );
  const showInGraph = (e: EventInfo) => {
    if (!e.layer) return;
    layerLink.focus({ run: e.run, layer: namespaceOf(e.layer), eventId: e.id });
    openGraphTab();
  };

  return (
    <section class="panel" data-testid="panel-events">
      <div class="toolbar">
        <label class="control">
          Severity
          <select value={severity} onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}>
            <option value="all">All</option>
            <option value="error">Error</option>
            <option value="warning">Warning</option>
            <option value="info">Info</option>
          </select>
        </label>
        <span class="muted">{shown.length} events</span>
        {scope !== null && <LayerChip layer={scope} onClear={() => layerLink.select(null)} />}
      </div>
      {error !== null && <div class="error">{error}</div>}
      {events !== null && shown.length === 0 ? (
        <div class="empty">No events in the selected runs.</div>
      ) : (
        <table class="grid events-table">
          <thead>
            <tr>
              <th>Run</th>
              <th>Step</th>
              <th>Time</th>
              <th>Severity</th>
              <th>Kind</th>
              <th>Layer</th>
              <th>Message</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr
                key={`${e.run}\u0000${e.id}`}
                data-testid="event-row"
                data-severity={e.severity}
                data-layer={e.layer ?? undefined}
                class={e.layer ? 'layer-linkable-row' : undefined}
                title={e.layer ? 'click to show this layer in the graph' : undefined}
                onMouseEnter={() => layerLink.hover(e.layer ? namespaceOf(e.layer) : null)}
                onMouseLeave={() => layerLink.hover(null)}
                onClick={() => showInGraph(e)}
              >
                <td class="run-name">
                  <span class="swatch" style={{ background: colorOf(e.run) }} />
                  {e.run}
                </td>
                <td class="num">{e.step}</td>
                <td class="num">{formatTime(e.wallTime)}</td>
                <td>
                  <span class={`badge sev-${e.severity}`}>{e.severity}</span>
                </td>
                <td>{e.kind}</td>
                <td class="mono">
                  {e.layer ? (
                    <span class="layer-linkable" data-testid="event-layer-link">
                      {e.layer}
                    </span>
                  ) : (
                    '—'
                  )}
                </td>
                <td class="message">{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <TextLogs />
    </section>
  );
}
