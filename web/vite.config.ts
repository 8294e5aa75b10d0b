import { defineConfig } from 'vite';

// The bundle is committed and embedded in the server binary, so the build is
// deterministic, has no source maps, and injects nothing inline (the server's
// CSP allows only same-origin scripts and styles).
export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
