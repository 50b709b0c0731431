import { useEffect, useState } from 'preact/hooks';
import { api, blobUrl, type ImageInfo } from '../../api';
import { useDashboard } from '../../context';
import { useTagGroups } from '../../hooks';

export function AttributionPanel() {
  const { groups, loading } = useTagGroups('attribution');
  return (
    <section class="panel" data-testid="panel-attribution">
      {!loading && groups.length === 0 ? (
        <div class="empty">No attributions logged in the selected runs (run.log_attribution).</div>
      ) : (
        groups.map((g) => (
          <div class="tag-block" key={g.tag}>
            <h3 class="tag-title">{g.tag}</h3>
            <div class="image-row">
              {g.runs.map((run) => (
                <AttributionCard key={run} run={run} tag={g.tag} />
              ))}
            </div>
          </div>
        ))
      )}
    </section>
  );
}

function AttributionCard({ run, tag }: { run: string; tag: string }) {
  const { colorOf } = useDashboard();
  const [items, setItems] = useState<ImageInfo[]>([]);
  useEffect(() => {
    const ctl = new AbortController();
    api
      .attributions(run, tag, ctl.signal)
      .then((r) => setItems(r.items))
      .catch(() => setItems([]));
    return () => ctl.abort();
  }, [run, tag]);
  return (
    <div class="card image-card" data-testid="attribution-card" data-run={run} data-tag={tag}>
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(run) }} />
        <span class="card-title">{run}</span>
      </div>
      <div class="image-strip">
        {items.map((it) => (
          <figure key={String(it.id)}>
            <img src={blobUrl(run, it.id)} alt={`${tag} at step ${it.step}`} />
            <figcaption class="num muted">step {it.step}</figcaption>
          </figure>
        ))}
      </div>
    </div>
  );
}
