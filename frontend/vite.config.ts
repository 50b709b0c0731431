import { defineConfig } from 'vite';

// The dashboard is served by deepscope's Starlette app from src/deepscope/server/static/app
// at "/", under a CSP of `script-src 'self'`: no inline script may be emitted, hence the
// disabled modulepreload polyfill. `base: './'` keeps asset URLs relative to index.html.
export default defineConfig({
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: '../src/deepscope/server/static/app',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 2000,
    assetsInlineLimit: 0,
  },
  worker: { format: 'es' },
});
