import { useEffect, useState } from 'preact/hooks';
import { api, blobUrl, type ImageInfo } from '../../api';
import { useDashboard } from '../../context';
import { useDebounced, useRunsVersion, useTagGroups } from '../../hooks';

export function ImagesPanel() {
  const { selected } = useDashboard();
  const { groups, error, loading } = useTagGroups('image');
  return (
    <section class="panel" data-testid="panel-images">
      {error !== null && <div class="error">{error}</div>}
      {selected.length === 0 ? (
        <div class="empty">No run selected: pick runs in the Runs tab.</div>
      ) : !loading && groups.length === 0 ? (
        <div class="empty">No images logged in the selected runs.</div>
      ) : (
        groups.map((g) => (
          <div class="tag-block" key={g.tag}>
            <h3 class="tag-title">{g.tag}</h3>
            <div class="image-row">
              {g.runs.map((run) => (
                <ImageCard key={run} run={run} tag={g.tag} />
              ))}
            </div>
          </div>
        ))
      )}
    </section>
  );
}

function ImageCard({ run, tag }: { run: string; tag: string }) {
  const { colorOf } = useDashboard();
  const version = useDebounced(useRunsVersion([run]), 300);
  const [images, setImages] = useState<ImageInfo[]>([]);
  const [index, setIndex] = useState<number | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    api
      .images(run, tag, ctl.signal)
      .then((r) => setImages([...r.images].sort((a, b) => a.step - b.step)))
      .catch(() => setImages([]));
    return () => ctl.abort();
  }, [run, tag, version]);
  // null follows the latest step (live); moving the slider pins a step.
  const i = index === null ? images.length - 1 : Math.min(index, images.length - 1);
  const current = i >= 0 ? images[i] : undefined;
  const w = typeof current?.meta.width === 'number' ? current.meta.width : undefined;
  const h = typeof current?.meta.height === 'number' ? current.meta.height : undefined;
  return (
    <div class="card image-card" data-testid="image-card" data-run={run} data-tag={tag}>
      <div class="card-head">
        <span class="swatch" style={{ background: colorOf(run) }} />
        <span class="card-title">{run}</span>
        <span class="muted num">{current !== undefined ? `step ${current.step}` : ''}</span>
      </div>
      <div class="image-frame">
        {current !== undefined ? (
          <img src={blobUrl(run, current.id)} alt={`${tag} at step ${current.step}`} width={w} height={h} />
        ) : (
          <span class="muted">no image</span>
        )}
      </div>
      <input
        type="range"
        data-testid="image-step"
        aria-label="image step"
        min={0}
        max={Math.max(0, images.length - 1)}
        step={1}
        value={Math.max(0, i)}
        disabled={images.length < 2}
        onInput={(e) => setIndex(Number((e.target as HTMLInputElement).value))}
      />
    </div>
  );
}
