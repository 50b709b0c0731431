// The workbench's input strip (explore mode, above the graph): the inputs as thumbnails,
// the class to explain (predicted or chosen), and the model's top-5 predictions for the
// selected input. A choice here updates every open view.

import type { WorkbenchInfo } from '../../wire/types';
import { inputUrl } from './api';
import { setSelection, useSelection } from './state';
import { Pending, useView } from './useView';
import './workbench.css';

const MAX_THUMBS = 64;

interface TopRow {
  class: number;
  name: string;
  score: number;
}

export function InputStrip({ info }: { info: WorkbenchInfo }) {
  const sel = useSelection();
  const pred = useView({ view: 'predict', input: sel.input });
  const top = (pred.view?.meta.top as TopRow[] | undefined) ?? [];
  const nClasses = (pred.view?.meta.classes as number | undefined) ?? info.classNames?.length ?? 0;
  const name = (k: number) => info.classNames?.[k] ?? `class ${k}`;
  return (
    <div class="wb-strip" data-testid="wb-strip">
      <div class="wb-inputs" role="listbox" aria-label="inputs">
        {info.inputs.slice(0, MAX_THUMBS).map((row) => (
          <button key={row.index} type="button" role="option" aria-selected={sel.input === row.index}
            class={sel.input === row.index ? 'wb-input active' : 'wb-input'} data-testid="wb-input" data-index={row.index}
            title={row.labelName !== null ? `input ${row.index}: ${row.labelName}` : `input ${row.index}`}
            onClick={() => setSelection({ input: row.index })}>
            {info.inputKind === 'image' ? <img src={inputUrl(row.index)} alt={`input ${row.index}`} /> : <span class="num">{`#${row.index}`}</span>}
            {row.labelName !== null && <span class="wb-label">{row.labelName}</span>}
          </button>
        ))}
        {info.inputs.length > MAX_THUMBS && <span class="muted">{`+${info.inputs.length - MAX_THUMBS} more`}</span>}
      </div>
      <label class="control">
        explain
        <select data-testid="wb-target" value={sel.target === null ? '' : String(sel.target)}
          onChange={(e) => setSelection({ target: e.currentTarget.value === '' ? null : Number(e.currentTarget.value) })}>
          <option value="">predicted class</option>
          {Array.from({ length: nClasses }, (_, k) => (
            <option key={k} value={k}>
              {name(k)}
            </option>
          ))}
        </select>
      </label>
      <div class="wb-preds" data-testid="wb-preds">
        {pred.view === null ? (
          <Pending state={pred} what="predictions" />
        ) : (
          <ol>
            {top.map((r) => (
              <li key={r.class} data-class={r.class}>
                <span class="wb-bar" style={{ width: `${Math.round(r.score * 60)}px` }} />
                <span>{r.name}</span>
                <span class="num muted">{r.score.toFixed(3)}</span>
              </li>
            ))}
          </ol>
        )}
      </div>
    </div>
  );
}
