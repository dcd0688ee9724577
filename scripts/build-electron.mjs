#!/usr/bin/env node
// Bundles the Electron shell: main, the engine's utility process, the job and decode workers as ESM, the sandboxed preload as one
// CommonJS file (a sandboxed preload can require nothing but electron). Native modules stay external.
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const external = ['electron', 'better-sqlite3', 'sharp', 'onnxruntime-node'];
await build({
  entryPoints: [
    path.join(root, 'src/main/electron/main.ts'),
    path.join(root, 'src/main/electron/backend-process.ts'),
    // Imports decode untrusted files in child processes (see decode-pool.ts), beside the bundles.
    { in: path.join(root, 'src/main/engine/image/decode-worker.ts'), out: 'decode-worker' },
    // Long jobs run in worker threads (see job-runner.ts), off the engine process's message loop.
    { in: path.join(root, 'src/main/services/jobs/job-worker.ts'), out: 'job-worker' },
  ],
  outdir: path.join(root, 'dist/main/electron'),
  outbase: path.join(root, 'src/main/electron'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: 'warning',
});
await build({
  entryPoints: [path.join(root, 'src/preload/preload.ts')],
  outfile: path.join(root, 'dist/preload/preload.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['electron'],
  logLevel: 'warning',
});
console.log('Electron shell built into dist/main and dist/preload.');
