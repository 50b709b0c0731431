import { defineConfig, type UserConfig } from 'vite';

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
const OUT = '../src/deepscope/server/static/app';
const common: UserConfig = {
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
};

function embed(name: 'widget' | 'report'): UserConfig {
  return {
    ...common,
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
