// The static-report entry: one self-contained HTML file (`deepscope report`,
// `deepscope.views.embed.report_html`) inlines this bundle and a snapshot of the dashboard
// API as `<script type="application/json" id="deepscope-data">`. This draws the whole
// dashboard (or the one panel the snapshot names) from it with the dashboard's own
// components: no network, no server, the file works from file://.

import { App } from '../App';
import { installTestHook } from '../testhook';
import { mount, styleElement } from './embedded';

function start(): void {
  installTestHook(); // the dashboard's automation hook (zoom, scale), as in main.tsx
  // no server to stream live updates from (`sse.ts` checks for EventSource)
  (globalThis as { EventSource?: unknown }).EventSource = undefined;
  document.head.appendChild(styleElement(document));
  const host = document.getElementById('app') ?? document.body.appendChild(document.createElement('main'));
  const data = document.getElementById('deepscope-data');
  let raw: unknown = null;
  try {
    raw = JSON.parse(data?.textContent ?? 'null');
  } catch (e) {
    raw = String(e);
  }
  const whole = (raw as { panel?: unknown } | null)?.panel === null;
  host.classList.toggle('panel-host', !whole);
  mount(host, raw, App);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
