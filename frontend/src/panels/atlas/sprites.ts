// Reading an `atlas` item (`deepscope.views.kinds.atlas`): its JSON document and its two
// PNG sprites, and cutting one channel's tiles out of them.

import { useEffect, useState } from 'preact/hooks';
import { blobUrl } from '../../api';
import type { AtlasItem } from '../../wire/types';

/** One channel of the main blob: its optimised image's activation and its examples'. */
export interface AtlasChannel {
  channel: number;
  score: number | null;
  values: (number | null)[];
}

export interface AtlasDoc {
  channels: AtlasChannel[];
}

export interface AtlasData {
  doc: AtlasDoc;
  images: HTMLImageElement;
  examples: HTMLImageElement | null;
}

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

/** The document and sprites of `item` (null while loading). */
export function useAtlasData(run: string, item: AtlasItem): { data: AtlasData | null; error: string | null } {
  const [data, setData] = useState<AtlasData | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setData(null);
    setError(null);
    const ctl = new AbortController();
    const doc = fetch(blobUrl(run, item.id), { credentials: 'same-origin', signal: ctl.signal }).then(
      (r) => r.json() as Promise<AtlasDoc>,
    );
    const images = item.parts.images === null ? Promise.reject(new Error('the atlas has no images')) : loadImage(blobUrl(run, item.parts.images.id));
    const examples = item.parts.examples === null ? Promise.resolve(null) : loadImage(blobUrl(run, item.parts.examples.id));
    Promise.all([doc, images, examples])
      .then(([d, i, e]) => !ctl.signal.aborted && setData({ doc: d, images: i, examples: e }))
      .catch((e: unknown) => !ctl.signal.aborted && setError(String(e)));
    return () => ctl.abort();
  }, [run, item.id]);
  return { data, error };
}

/** Where channel `c`'s optimised image lies in the images sprite: [x, y, w, h]. */
export function imageBox(item: AtlasItem, c: number): [number, number, number, number] {
  const [h, w] = item.meta.size;
  const cols = item.meta.columns;
  return [(c % cols) * w, Math.floor(c / cols) * h, w, h];
}

/** Where example `j` of channel `c` lies in the examples sprite: [x, y, w, h]. */
export function exampleBox(item: AtlasItem, c: number, j: number): [number, number, number, number] {
  const [h, w] = item.meta.exampleSize;
  const cols = item.meta.columns;
  return [((c % cols) * item.meta.topK + j) * w, Math.floor(c / cols) * h, w, h];
}

/** Draw `box` of `sprite` into `canvas` at its own pixel size (CSS scales it, crisply). */
export function drawTile(canvas: HTMLCanvasElement | null, sprite: HTMLImageElement, box: [number, number, number, number]): void {
  if (canvas === null) return;
  const [x, y, w, h] = box;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, w, h);
  ctx.drawImage(sprite, x, y, w, h, 0, 0, w, h);
}
