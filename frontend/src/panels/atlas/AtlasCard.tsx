// One channel of an atlas: its optimised image beside its top-k dataset examples, each with
// its activation (the channel's spatial maximum), as a card; `AtlasDetail` is the same
// channel enlarged.

import { useEffect, useRef } from 'preact/hooks';
import type { AtlasItem } from '../../wire/types';
import { drawTile, exampleBox, imageBox, type AtlasChannel, type AtlasData } from './sprites';

function Tile(props: { sprite: HTMLImageElement; box: [number, number, number, number]; cls: string; testid: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [x, y, w, h] = props.box;
  useEffect(() => drawTile(ref.current, props.sprite, props.box), [props.sprite, x, y, w, h]);
  return <canvas ref={ref} class={`atlas-canvas ${props.cls}`} data-testid={props.testid} width={w} height={h} />;
}

/** An activation in 4 significant digits. */
export function value(v: number | null): string {
  if (v === null) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

function Examples(props: { item: AtlasItem; data: AtlasData; channel: AtlasChannel; big: boolean }) {
  const { item, data, channel, big } = props;
  if (data.examples === null || channel.values.length === 0) {
    return <div class="muted atlas-noexamples">no dataset examples logged</div>;
  }
  const sprite = data.examples;
  return (
    <div class="atlas-examples">
      {channel.values.map((v, j) => (
        <figure key={j} class="atlas-example" data-testid={big ? 'atlas-detail-example' : 'atlas-example'}>
          <Tile sprite={sprite} box={exampleBox(item, channel.channel, j)} cls={big ? 'atlas-ex-big' : 'atlas-ex'} testid={big ? 'atlas-detail-example-image' : 'atlas-example-image'} />
          <figcaption data-testid="atlas-example-value">{value(v)}</figcaption>
        </figure>
      ))}
    </div>
  );
}

/** Whether the optimised image's score is above the best example's. */
function beats(ch: AtlasChannel): boolean {
  const best = ch.values[0];
  return ch.score !== null && best !== undefined && best !== null && ch.score > best;
}

export function AtlasCard(props: { item: AtlasItem; data: AtlasData; channel: AtlasChannel; onOpen: () => void }) {
  const { item, data, channel } = props;
  const c = channel.channel;
  return (
    <div class="atlas-card" data-testid="atlas-card" data-channel={c}>
      <button type="button" class="atlas-main" data-testid="atlas-open" title={`enlarge channel ${c}`} onClick={props.onOpen}>
        <Tile sprite={data.images} box={imageBox(item, c)} cls="atlas-img" testid="atlas-image" />
        <span class="atlas-caption">
          <strong>{`ch ${c}`}</strong>{' '}
          <span
            data-testid="atlas-score"
            class={beats(channel) ? 'atlas-beats' : undefined}
            title={beats(channel) ? 'the optimised image excites the channel more than every example' : 'the optimised image\'s activation'}
          >
            {value(channel.score)}
          </span>
        </span>
      </button>
      <Examples item={item} data={data} channel={channel} big={false} />
    </div>
  );
}

export function AtlasDetail(props: {
  item: AtlasItem;
  data: AtlasData;
  channel: AtlasChannel;
  onClose: () => void;
  onStep: (delta: number) => void;
}) {
  const { item, data, channel } = props;
  const c = channel.channel;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') props.onClose();
      else if (e.key === 'ArrowRight') props.onStep(1);
      else if (e.key === 'ArrowLeft') props.onStep(-1);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [props.onClose, props.onStep]);
  return (
    <div class="atlas-overlay" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="atlas-detail card" role="dialog" aria-label={`channel ${c}`} data-testid="atlas-detail" data-channel={c}>
        <div class="card-head">
          <strong>{`${item.meta.layer} · channel ${c}`}</strong>
          <span class="muted">{`optimised image: ${value(channel.score)} · best example: ${value(channel.values[0] ?? null)}`}</span>
          <span class="atlas-detail-nav">
            <button type="button" disabled={c === 0} onClick={() => props.onStep(-1)}>
              ‹
            </button>
            <button type="button" disabled={c === item.meta.channels - 1} onClick={() => props.onStep(1)}>
              ›
            </button>
            <button type="button" data-testid="atlas-close" onClick={props.onClose}>
              close
            </button>
          </span>
        </div>
        <div class="atlas-detail-body">
          <figure class="atlas-example">
            <Tile sprite={data.images} box={imageBox(item, c)} cls="atlas-img-big" testid="atlas-detail-image" />
            <figcaption>optimised</figcaption>
          </figure>
          <Examples item={item} data={data} channel={channel} big />
        </div>
      </div>
    </div>
  );
}
