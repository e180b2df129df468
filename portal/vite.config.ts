import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Served by the control plane at /portal/ (embedded in its binary).
export default defineConfig({
  base: "/portal/",
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Inline nothing: the CSP allows scripts, styles and images from 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
});
