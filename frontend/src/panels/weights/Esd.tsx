// The empirical spectral density (eigenvalues of WᵀW) as a histogram on log axes: log10
// value bins, bar heights log10(count + 1), the power-law fit's xmin as a red line, and
// alpha printed.

import { useEffect, useRef } from 'preact/hooks';
import type { EsdSummary } from '../../wire/types';
import { fmt } from './data';

const W = 360;
const H = 150;
const PAD = 28;

export function Esd({ esd }: { esd: EsdSummary }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const edges = esd.log10Edges;
  useEffect(() => {
    const canvas = ref.current;
    if (!canvas || edges.length < 2) return;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, W, H);
    const lo = edges[0], hi = edges[edges.length - 1];
    const pw = W - PAD - 8, ph = H - PAD - 8;
    const x = (v: number) => PAD + ((v - lo) / (hi - lo || 1)) * pw;
    const heights = esd.counts.map((c) => Math.log10(c + 1));
    const top = Math.max(...heights, 1e-9);
    ctx.fillStyle = '#4672b4';
    esd.counts.forEach((c, i) => {
      if (!c) return;
      const h = Math.max(1, (heights[i] / top) * ph);
      ctx.fillRect(x(edges[i]), 8 + ph - h, Math.max(1, x(edges[i + 1]) - x(edges[i]) - 1), h);
    });
    ctx.strokeStyle = '#1d2330';
    ctx.beginPath();
    ctx.moveTo(PAD, 8 + ph);
    ctx.lineTo(PAD + pw, 8 + ph);
    ctx.moveTo(PAD, 8);
    ctx.lineTo(PAD, 8 + ph);
    ctx.stroke();
    if (esd.xmin !== null && esd.xmin > 0) {
      const xm = x(Math.log10(esd.xmin));
      ctx.strokeStyle = '#c81e1e';
      ctx.beginPath();
      ctx.moveTo(xm, 8);
      ctx.lineTo(xm, 8 + ph);
      ctx.stroke();
    }
    ctx.fillStyle = '#1d2330';
    ctx.font = '11px sans-serif';
    ctx.fillText(`1e${lo.toFixed(1)}`, PAD, H - 6);
    const right = `1e${hi.toFixed(1)}`;
    ctx.fillText(right, PAD + pw - ctx.measureText(right).width, H - 6);
    ctx.save();
    ctx.translate(11, 8 + ph / 2 + 30);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText('log count', 0, 0);
    ctx.restore();
    canvas.dataset.painted = String(esd.n);
  }, [esd]);
  return (
    <figure class="wt-esd" data-testid="weights-esd">
      <figcaption>
        ESD (eigenvalues of WᵀW, log axes) · <b data-testid="weights-alpha">alpha = {fmt(esd.alpha)}</b> · ‖W‖₂ ={' '}
        {fmt(esd.spectralNorm)} · stable rank {fmt(esd.stableRank)}
      </figcaption>
      {edges.length >= 2 ? (
        <canvas ref={ref} class="wt-esd-canvas" style={{ width: `${W}px`, height: `${H}px` }} />
      ) : (
        <div class="muted">no positive eigenvalue</div>
      )}
      <div class="muted">
        {esd.n} eigenvalues{esd.nonPositive ? ` (${esd.nonPositive} ≤ 0 left out)` : ''} · tail fit from xmin = {fmt(esd.xmin)} (red) over {esd.nTail},
        KS D = {fmt(esd.D)}
      </div>
    </figure>
  );
}
