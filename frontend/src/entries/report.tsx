// The static-report entry: one self-contained HTML file (`deepscope.views.embed.report_html`)
// inlines this bundle and the payload as `<script type="application/json"
// id="deepscope-data">`; this draws the same panel component as the dashboard from it,
// with no network and no server (the file works from file://).

import { mount, styleElement } from './embedded';

function start(): void {
  document.head.appendChild(styleElement(document));
  const host = document.getElementById('app') ?? document.body.appendChild(document.createElement('main'));
  host.classList.add('panel-host');
  const data = document.getElementById('deepscope-data');
  mount(host, data?.textContent ?? 'null');
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
