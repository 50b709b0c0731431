// The graph inspector's link to the Atlas panel: shown for a node whose module (a group's
// namespace, or an op's) is a layer with a logged atlas in the graph's run.

import { useEffect } from 'preact/hooks';
import { useKeyed } from '../../hooks';
import { fetchView } from '../../views/registry';

const cache = new Map<string, Promise<string[]>>();

/** The layers of `run` with a logged atlas (module paths, `a.b.c`); fetched once per run. */
function atlasLayers(run: string): Promise<string[]> {
  let p = cache.get(run);
  if (p === undefined) {
    p = fetchView('atlas', run).then(
      (v) => [...new Set(v.items.map((i) => i.meta.layer))],
      () => [],
    );
    cache.set(run, p);
    // a later atlas of a live run shows up on the next selection after a minute
    window.setTimeout(() => cache.delete(run), 60_000);
  }
  return p;
}

/** The module path of a graph node: a group's namespace, else its own namespace. */
function modulePath(node: { id: string; kind: string; namespace: string }): string {
  const ns = node.kind === 'group' && node.id.startsWith('ns:') ? node.id.slice(3) : node.namespace;
  return ns.split('/').join('.');
}

export function InspectorAtlas({ run, node }: { run: string | null; node: { id: string; kind: string; namespace: string } }) {
  const [layers, setLayers] = useKeyed<string[]>(run);
  useEffect(() => {
    if (run === null) return;
    let alive = true;
    void atlasLayers(run).then((l) => alive && setLayers(run, l));
    return () => {
      alive = false;
    };
  }, [run]);
  const path = modulePath(node);
  if (run === null || path === '' || layers === null || !layers.includes(path)) return null;
  const href = `#/atlas?run=${encodeURIComponent(run)}&layer=${encodeURIComponent(path)}`;
  return (
    <div class="gx-row" data-testid="inspector-atlas">
      <dt>atlas</dt>
      <dd>
        <a href={href} data-testid="inspector-atlas-link">
          Atlas
        </a>
        <span class="gx-muted">{` (${path}: optimised images and top examples)`}</span>
      </dd>
    </div>
  );
}
