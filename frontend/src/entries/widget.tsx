// The notebook widget entry: an anywidget ES module (https://anywidget.dev). The widget's
// model holds the embedded payload (`deepscope.views.embed`) in its `payload` trait (an
// object or a JSON string); `render` draws the same panel component as the dashboard into
// `el` and redraws when the trait changes; the function it returns is the view's cleanup.

import { render as draw } from 'preact';
import { mount, styleElement } from './embedded';

/** The part of anywidget's model this widget reads. */
export interface WidgetModel {
  get(name: string): unknown;
  on(event: string, callback: () => void): void;
  off?(event?: string | null, callback?: (() => void) | null): void;
}

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  el.replaceChildren(styleElement(el.ownerDocument));
  const host = el.ownerDocument.createElement('div');
  host.className = 'panel-host deepscope-widget';
  el.appendChild(host);
  const update = () => mount(host, model.get('payload'));
  update();
  model.on('change:payload', update);
  return () => {
    model.off?.('change:payload', update);
    draw(null, host);
  };
}

// anywidget >= 0.9 reads the default export (a named `render` export is deprecated there).
export default { render };
