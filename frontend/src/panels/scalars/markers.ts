// Draw non-finite scalar values as red markers on the plot edges (cf. TensorBoard PR #4461):
// +Inf ▲ at the top edge, -Inf ▼ at the bottom edge, NaN ◆ just below the top edge.
import type uPlot from 'uplot';
import { NONFINITE_COLOR } from '../../colors';
import type { Marker } from './series';

export function drawMarkers(u: uPlot, markers: readonly Marker[]): void {
  if (markers.length === 0) return;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const s = Math.max(5, Math.round(6 * (window.devicePixelRatio || 1)));
  ctx.save();
  ctx.fillStyle = NONFINITE_COLOR;
  for (const m of markers) {
    const x = u.valToPos(m.x, 'x', true);
    if (!Number.isFinite(x) || x < left - 1 || x > left + width + 1) continue;
    ctx.beginPath();
    if (m.kind === '+inf') {
      ctx.moveTo(x, top);
      ctx.lineTo(x - s, top + 1.6 * s);
      ctx.lineTo(x + s, top + 1.6 * s);
    } else if (m.kind === '-inf') {
      const b = top + height;
      ctx.moveTo(x, b);
      ctx.lineTo(x - s, b - 1.6 * s);
      ctx.lineTo(x + s, b - 1.6 * s);
    } else {
      const cy = top + 2.6 * s;
      ctx.moveTo(x, cy - s);
      ctx.lineTo(x + s, cy);
      ctx.lineTo(x, cy + s);
      ctx.lineTo(x - s, cy);
    }
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}
