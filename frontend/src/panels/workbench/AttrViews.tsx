// The Attribution tab (Grad-CAM at this layer, input saliency; overlays drawn by the
// analysis' own renderer and served as PNG) and the Attention tab (one head's query × key
// weights, drawn by the Attention panel's Heatmap).

import { useEffect, useState } from 'preact/hooks';
import { Heatmap } from '../attention/Heatmap';
import { fmt, headMatrix } from '../attention/data';
import type { WireArray } from '../../wire/envelope';
import type { WorkbenchTabs } from '../../wire/types';
import { fetchPartArray, partUrl } from './api';
import type { Selection } from './state';
import { Pending, useView } from './useView';

function Overlay({ view, node, sel, title, testid }: { view: 'gradcam' | 'saliency'; node: string; sel: Selection; title: string; testid: string }) {
  const state = useView({ view, node: view === 'gradcam' ? node : '', input: sel.input, target: sel.target });
  const v = state.view;
  return (
    <figure class="wb-figure" data-testid={testid} data-key={v?.key ?? ''}>
      <figcaption>
        {title}
        {v !== null && <span class="muted">{` · ${String(v.meta.targetName)}`}</span>}
      </figcaption>
      {v === null ? (
        <Pending state={state} what={title} />
      ) : v.parts.includes('image') ? (
        <img class="wb-img" src={partUrl(v.key, 'image')} alt={`${title} for ${String(v.meta.targetName)}`} data-testid={`${testid}-img`} />
      ) : (
        <TokenScores tokens={(v.meta.tokens as string[] | undefined) ?? []} keyId={v.key} />
      )}
    </figure>
  );
}

function TokenScores({ tokens, keyId }: { tokens: string[]; keyId: string }) {
  const [arr, setArr] = useState<WireArray | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    fetchPartArray(keyId, 'heat', ctl.signal).then(setArr).catch(() => undefined);
    return () => ctl.abort();
  }, [keyId]);
  if (arr === null) return null;
  return (
    <div class="wb-tokens">
      {tokens.map((t, i) => (
        <span key={i} class="wb-token" style={{ background: `rgba(220, 60, 30, ${Number(arr.data[i]).toFixed(3)})` }}>
          {t}
        </span>
      ))}
    </div>
  );
}

export function AttributionTab({ node, sel, tabs }: { node: string; sel: Selection; tabs: WorkbenchTabs }) {
  return (
    <div class="wb-tab wb-attr" data-testid="wb-attribution">
      {tabs.gradcam && <Overlay view="gradcam" node={node} sel={sel} title="Grad-CAM at this layer" testid="wb-gradcam" />}
      {tabs.saliency && <Overlay view="saliency" node={node} sel={sel} title="Input saliency" testid="wb-saliency" />}
    </div>
  );
}

export function AttentionTab({ node, sel }: { node: string; sel: Selection }) {
  const state = useView({ view: 'attention', node, input: sel.input });
  const [got, setGot] = useState<{ key: string; arr: WireArray } | null>(null);
  const [head, setHead] = useState<number | null>(null);
  const v = state.view;
  useEffect(() => {
    if (v === null) return;
    const ctl = new AbortController();
    fetchPartArray(v.key, 'weights', ctl.signal)
      .then((arr) => setGot({ key: v.key, arr }))
      .catch(() => undefined);
    return () => ctl.abort();
  }, [v?.key]);
  const arr = got !== null && v !== null && got.key === v.key ? got.arr : null;
  if (v === null) return <Pending state={state} what="attention" />;
  const tokens = (v.meta.tokens as string[] | undefined) ?? [];
  const heads = (v.meta.heads as number[] | undefined) ?? [];
  return (
    <div class="wb-tab" data-testid="wb-attention" data-key={v.key}>
      <label class="control">
        head
        <select data-testid="wb-head" onChange={(e) => setHead(e.currentTarget.value === '' ? null : Number(e.currentTarget.value))}>
          <option value="">mean of {heads.length} heads</option>
          {heads.map((h, i) => (
            <option key={h} value={i}>{`head ${h}`}</option>
          ))}
        </select>
      </label>
      {arr !== null && (
        <Heatmap
          m={headMatrix(arr, head)}
          rowLabels={tokens}
          colLabels={tokens}
          px={400}
          testid="wb-attn-heatmap"
          describe={(r, c, val) => `${tokens[r] ?? r} → ${tokens[c] ?? c}: ${fmt(val)}`}
        />
      )}
    </div>
  );
}
