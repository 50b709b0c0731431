import { defineConfig, type Plugin, type UserConfig } from 'vite';

// One build (`npm run build`), three entry points sharing the panel components:
// - the dashboard (default mode): index.html + assets/, served by deepscope's Starlette app
//   from src/deepscope/server/static/app at "/", under a CSP of `script-src 'self'`: no
//   inline script may be emitted, hence the disabled modulepreload polyfill. `base: './'`
//   keeps asset URLs relative to index.html.
// - `--mode widget`: embed/widget.js, the notebook widget (an anywidget ES module exporting
//   `render({model, el})`), one self-contained file (its CSS travels inside as text).
// - `--mode report`: embed/report.js, the static report's script, inlined with the payload
//   into one HTML file by `deepscope.views.embed.report_html`.
// The embed builds run after the dashboard's (which empties the output folder first).
// Their CSS (every stylesheet the panels import) travels inside the script as text
// (`inlineCss`): the report and the widget are single files.
const OUT = '../src/deepscope/server/static/app';
const common: UserConfig = {
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
};

/** Move the CSS a library build emits into its entry chunk, as the module constant
 * `__deepscopeCss` (read by `src/entries/embedded.tsx`), so no stylesheet file is left. */
function inlineCss(): Plugin {
  return {
    name: 'deepscope-inline-css',
    apply: 'build',
    enforce: 'post',
    generateBundle(_options, bundle) {
      let css = '';
      for (const [name, file] of Object.entries(bundle)) {
        if (file.type === 'asset' && name.endsWith('.css')) {
          css += String(file.source);
          delete bundle[name];
        }
      }
      for (const file of Object.values(bundle)) {
        if (file.type === 'chunk' && file.isEntry) file.code = `const __deepscopeCss=${JSON.stringify(css)};\n${file.code}`;
      }
    },
  };
}

const WORKER_EXPR = "new Worker(new URL('./elk.worker.ts', import.meta.url), { type: 'module' })";

/** The graph layout worker in an embed, which has no file beside it to load: the report
 * inlines it (`?worker&inline`, a Blob URL; ~1.5 MB, once per report file); the widget
 * throws at creation instead, so `layoutClient` lays graphs out on the page with its quick
 * engine (ELK in every widget would add that much to each saved notebook output). */
function embedWorker(inline: boolean): Plugin {
  return {
    name: 'deepscope-embed-worker',
    enforce: 'pre',
    transform(code, id) {
      if (!id.endsWith('/panels/graph/layoutClient.ts')) return null;
      if (!code.includes(WORKER_EXPR)) {
        this.warn('layoutClient.ts no longer creates its worker as expected: update embedWorker');
        return null;
      }
      if (!inline) return code.replace(WORKER_EXPR, "(() => { throw new Error('no layout worker in a widget'); })()");
      return `import ElkInlineWorker from './elk.worker.ts?worker&inline';\n${code.replace(WORKER_EXPR, 'new ElkInlineWorker()')}`;
    },
  };
}

function embed(name: 'widget' | 'report'): UserConfig {
  return {
    ...common,
    plugins: [inlineCss(), embedWorker(name === 'report')],
    publicDir: false,
    // library builds keep `process.env.NODE_ENV` unless told; the page has no `process`
    define: { 'process.env.NODE_ENV': JSON.stringify('production') },
    build: {
      outDir: `${OUT}/embed`,
      emptyOutDir: false,
      sourcemap: false,
      target: 'es2022',
      minify: true,
      assetsInlineLimit: 0,
      lib: { entry: `src/entries/${name}.tsx`, formats: ['es'], fileName: () => `${name}.js` },
      rollupOptions: { output: { inlineDynamicImports: true } },
    },
  };
}

export default defineConfig(({ mode }): UserConfig => {
  if (mode === 'widget' || mode === 'report') return embed(mode);
  return {
    ...common,
    build: {
      outDir: OUT,
      emptyOutDir: true,
      modulePreload: { polyfill: false },
      sourcemap: false,
      target: 'es2022',
      chunkSizeWarningLimit: 2000,
      assetsInlineLimit: 0,
    },
    worker: { format: 'es' },
  };
});
