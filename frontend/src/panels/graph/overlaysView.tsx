// The graph panel's overlay pieces (issue #18): the step scrubber, badges placed on the
// nodes that are shown, and the nodes of a layer hovered in another panel.
import { layerLink, layerOfTag } from '../../context';
import type { OverlayBadge } from './overlays';
import type { Scene, SceneNode } from './scene';
import { groupNamespace } from './types';
import './overlays.css';

export interface ScrubberProps {
  steps: number[];
  /** Index into `steps`. */
  index: number;
  /** The step the shown values come from (may lag while the next one loads). */
  shownStep: number | null;
  onIndex: (i: number) => void;
}

export function Scrubber(p: ScrubberProps) {
  if (p.steps.length === 0) return null;
  const last = p.steps.length - 1;
  const at = p.steps[Math.min(p.index, last)];
  return (
    <span class="gx-scrub" data-testid="overlay-scrubber-box">
      <button type="button" data-testid="overlay-prev" disabled={p.index <= 0} onClick={() => p.onIndex(p.index - 1)} title="previous step">
        ‹
      </button>
      <input
        type="range"
        data-testid="overlay-scrubber"
        min={0}
        max={last}
        step={1}
        value={Math.min(p.index, last)}
        onInput={(e) => p.onIndex(Number((e.target as HTMLInputElement).value))}
      />
      <button type="button" data-testid="overlay-next" disabled={p.index >= last} onClick={() => p.onIndex(p.index + 1)} title="next step">
        ›
      </button>
      <span class="gx-scrub-step" data-testid="overlay-step" data-step={at} data-shown-step={p.shownStep ?? ''}>
        {`step ${at}`}
      </span>
    </span>
  );
}

function namespaceOfNode(sn: SceneNode): string {
  return groupNamespace(sn.node.id) ?? sn.node.namespace;
}

/** Badges by the id of the shown node that holds each event's layer: the node itself, or
 * the innermost collapsed group around it. */
export function visibleBadges(scene: Scene, badges: Map<string, OverlayBadge[]>): Map<string, OverlayBadge[]> {
  const out = new Map<string, OverlayBadge[]>();
  const add = (id: string, items: OverlayBadge[]) => {
    const list = out.get(id);
    if (list === undefined) out.set(id, [...items]);
    else for (const b of items) if (!list.includes(b)) list.push(b);
  };
  for (const [id, items] of badges) {
    const sn = scene.byId.get(id);
    if (sn !== undefined && !sn.expanded) {
      add(id, items);
      continue;
    }
    const ns = groupNamespace(id) ?? items[0].namespaces[items[0].nodes.indexOf(id)] ?? '';
    const parts = ns.split('/');
    for (let k = parts.length; k >= 1; k--) {
      const g = scene.byId.get(`ns:${parts.slice(0, k).join('/')}`);
      if (g !== undefined && !g.expanded) {
        add(g.node.id, items);
        break;
      }
    }
  }
  return out;
}

/** Shown nodes of `layer` (a namespace): its own nodes, or the collapsed group holding it. */
export function linkedNodes(scene: Scene, layer: string | null): Set<string> {
  const out = new Set<string>();
  if (layer === null || layer === '') return out;
  for (const sn of scene.nodes) {
    const ns = namespaceOfNode(sn);
    if (ns === '') continue;
    if (ns === layer || (!sn.expanded && sn.node.kind === 'group' && layer.startsWith(`${ns}/`))) out.add(sn.node.id);
  }
  return out;
}

/** "filtered by <layer> ×": shown by a panel that the graph's selection filters. */
export function LayerChip(props: { layer: string; onClear: () => void }) {
  return (
    <span class="layer-chip" data-testid="layer-filter-chip" data-layer={props.layer}>
      filtered by <code>{props.layer}</code>
      <button type="button" data-testid="layer-filter-clear" title="show every layer" onClick={props.onClear}>
        ×
      </button>
    </span>
  );
}

/** Delegated `mouseover` of a panel's charts: the hovered chart's layer (its `data-tag`) is
 * the linked hover, which the graph highlights. */
export function hoverLayerOfTag(ev: MouseEvent): void {
  const el = (ev.target as Element | null)?.closest?.('[data-tag]');
  const tag = el?.getAttribute('data-tag') ?? null;
  layerLink.hover(tag === null ? null : layerOfTag(tag));
}
