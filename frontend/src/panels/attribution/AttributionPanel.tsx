// The dashboard's attribution panel: for each selected run, load `/api/views/attribution` and
// draw it with the payload-only `AttributionCard` (the component the notebook widget and the
// static report draw too), its blobs fetched from `/api/blob` by id.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { blobUrl } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion } from '../../hooks';
import { fetchView } from '../../views/registry';
import type { AttributionView } from '../../wire/types';
import { AttributionCard, type AttributionAssets, type TokenDoc } from './AttributionCard';

export { IMAGE_PX } from './AttributionCard';

export function AttributionPanel() {
  const { selected } = useDashboard();
  return (
    <section class="panel" data-testid="panel-attribution">
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : (
        selected.map((run) => <AttributionRun key={run} run={run} />)
      )}
    </section>
  );
}

/** Blobs of `run` from the server, by id (`/api/blob?run=&id=`). */
export function serverAssets(run: string): AttributionAssets {
  return {
    image: (id) => blobUrl(run, id),
    tokens: async (id, signal) => {
      const resp = await fetch(blobUrl(run, id), { signal, credentials: 'same-origin' });
      return (await resp.json()) as TokenDoc;
    },
  };
}

function AttributionRun({ run }: { run: string }) {
  const { colorOf } = useDashboard();
  const version = useDebounced(useRunsVersion([run]), 300);
  const [view, setView] = useState<AttributionView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const assets = useMemo(() => serverAssets(run), [run]);
  useEffect(() => {
    const ctl = new AbortController();
    fetchView('attribution', run, {}, ctl.signal)
      .then((r) => {
        setView(r);
        setError(null);
      })
      .catch((e: unknown) => {
        if (ctl.signal.aborted) return;
        setView({ kind: 'attribution', run, items: [], skipped: 0 });
        setError(String(e));
      });
    return () => ctl.abort();
  }, [run, version]);
  if (view === null) return <div class="card attribution-card" data-testid="attribution-card" data-run={run} />;
  return <AttributionCard view={view} assets={assets} color={colorOf(run)} error={error} />;
}
