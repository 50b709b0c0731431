// Legend for the current colouring: op swatches, or the overlay's sequential scale.
import { formatValue } from '../../format';
import { NO_VALUE, NONFINITE_COLOR, opColor, SEQUENTIAL_CSS, type ColorMode, type Colorer } from './colorScale';
import type { Scene } from './scene';

const MAX_OPS = 14;

export function Legend(props: { mode: ColorMode; colorer: Colorer; scene: Scene }) {
  const { mode, colorer } = props;
  if (mode.kind === 'none') return null;
  if (mode.kind === 'op') {
    const counts = new Map<string, number>();
    for (const sn of props.scene.nodes) {
      if (sn.node.kind === 'op') counts.set(sn.node.op, (counts.get(sn.node.op) ?? 0) + 1);
    }
    const ops = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_OPS);
    return (
      <div class="gx-legend" data-testid="graph-legend">
        {ops.map(([op]) => (
          <span key={op} class="gx-swatch-item">
            <span class="gx-swatch" style={{ background: opColor(op, false) }} />
            {op}
          </span>
        ))}
      </div>
    );
  }
  const range = colorer.range;
  const scale = colorer.scale ?? 'linear';
  const mid =
    range === null ? null : scale === 'log' ? Math.sqrt(range[0] * range[1]) : (range[0] + range[1]) / 2;
  return (
    <div
      class="gx-legend"
      data-testid="graph-legend"
      data-lo={range?.[0]}
      data-hi={range?.[1]}
      data-scale={scale}
      data-step={mode.kind === 'series' ? (mode.step ?? '') : undefined}
    >
      <span class="gx-legend-name">{mode.kind === 'series' && mode.step !== null ? `${mode.name} @ step ${mode.step}` : mode.name}</span>
      <span data-testid="graph-legend-lo">{range === null ? '—' : formatValue(range[0])}</span>
      <span class="gx-ramp-box">
        <span class="gx-ramp" style={{ background: SEQUENTIAL_CSS }} />
        {mid !== null && range !== null && range[0] !== range[1] && <span class="gx-ramp-mid">{formatValue(mid)}</span>}
      </span>
      <span data-testid="graph-legend-hi">{range === null ? '—' : formatValue(range[1])}</span>
      {scale === 'log' && <span class="gx-muted">log scale</span>}
      <span class="gx-swatch-item">
        <span class="gx-swatch" style={{ background: NO_VALUE }} />
        no value
      </span>
      <span class="gx-swatch-item">
        <span class="gx-swatch" style={{ background: NONFINITE_COLOR }} />
        NaN / ±Inf
      </span>
    </div>
  );
}
