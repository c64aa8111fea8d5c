// Bundles the host process entry into one file. A host is started once per emulated machine, so its
// footprint is multiplied: one bundled file loads faster and keeps about 15 MB less resident than the
// same code as a few hundred ES modules (measured by `slicelab bench startup`). The cores are not
// bundled: see coreEntry in packages/host/src/cores.ts.
import { build } from 'esbuild';

const entries = { 'host.bundle': 'packages/host/dist/main.js' };

await build({
  entryPoints: entries,
  outdir: 'packages/host/dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  // the native msgpack accelerator is an optional addon, loaded from node_modules at run time
  external: ['msgpackr-extract'],
  banner: { js: "import { createRequire as __slicelabRequire } from 'node:module'; const require = __slicelabRequire(import.meta.url);" },
});
