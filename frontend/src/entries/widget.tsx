// The notebook widget entry: an anywidget ES module (https://anywidget.dev), built from the
// same panel components as the dashboard. The model's `payload` trait (an object or a JSON
// string) holds a snapshot of one result (`deepscope.views.embed.ViewBuffer.snapshot`):
// `render` draws its panel into a shadow root on `el` (the dashboard's styles stay inside,
// the notebook's stay out) and redraws when the trait changes. A model whose `html` trait
// is set (`run.show()`: a whole dashboard as a report page) gets a sandboxed iframe instead:
// its own document, scripts allowed, no access to the notebook. A model whose `explore`
// trait is true (`deepscope.explore` in a notebook: `ExploreWidget`) draws the live-model
// workbench (`explore.tsx`) with its API on the widget's comm channel (`comm.ts`). The
// function `render` returns is the view's cleanup.

import { render as draw } from 'preact';
import { connect, type CommModel } from './comm';
import { mount, styleElement } from './embedded';
import { ExploreView } from './explore';

/** The part of anywidget's model this widget reads. */
export interface WidgetModel {
  get(name: string): unknown;
  on(event: string, callback: () => void): void;
  off?(event?: string | null, callback?: (() => void) | null): void;
}

function frame(el: HTMLElement, model: WidgetModel): () => void {
  const iframe = el.ownerDocument.createElement('iframe');
  iframe.setAttribute('sandbox', 'allow-scripts');
  iframe.setAttribute('data-testid', 'deepscope-frame');
  iframe.title = 'deepscope dashboard';
  const height = Number(model.get('height') ?? 720);
  iframe.style.cssText = `width: 100%; height: ${Number.isFinite(height) ? height : 720}px; border: 1px solid #8884; border-radius: 4px;`;
  const update = () => {
    iframe.srcdoc = String(model.get('html') ?? '');
  };
  update();
  el.replaceChildren(iframe);
  model.on('change:html', update);
  return () => {
    model.off?.('change:html', update);
    iframe.remove();
  };
}

function explore(model: WidgetModel & CommModel, root: ShadowRoot, host: HTMLElement): () => void {
  const disconnect = connect(model, root);
  const height = Number(model.get('height') ?? 760);
  host.style.minHeight = `${Number.isFinite(height) ? height : 760}px`;
  draw(<ExploreView />, host);
  return () => {
    draw(null, host);
    disconnect();
    host.remove();
  };
}

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  if (typeof model.get('html') === 'string' && model.get('html') !== '') return frame(el, model);
  const root = el.shadowRoot ?? el.attachShadow({ mode: 'open' });
  root.replaceChildren(styleElement(el.ownerDocument, true));
  const host = el.ownerDocument.createElement('div');
  host.className = 'panel-host deepscope-widget';
  root.appendChild(host);
  if (model.get('explore') === true) return explore(model as WidgetModel & CommModel, root, host);
  const update = () => mount(host, model.get('payload'));
  update();
  model.on('change:payload', update);
  return () => {
    model.off?.('change:payload', update);
    draw(null, host);
    host.remove();
  };
}

// anywidget >= 0.9 reads the default export (a named `render` export is deprecated there).
export default { render };
