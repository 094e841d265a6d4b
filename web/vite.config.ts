// Builds the hub into the Python package, so installing lockstep needs no Node.js.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/lockstep/hub/assets",
    emptyOutDir: true,
    target: "es2022",
    // No inline module-preload polyfill: the page's CSP allows no inline script.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 800,
  },
});
