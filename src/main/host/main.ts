// Starts the browser host and prints its URL (with the per-run token). Stops cleanly on Ctrl+C.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultDataDir } from './backend.ts';
import { startHost } from './server.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

const host = await startHost({
  port: Number(process.env.FEWSHOT_PORT ?? 0),
  dataDir: defaultDataDir(),
  rendererDir: process.env.FEWSHOT_RENDERER ?? path.join(REPO, 'dist', 'renderer'),
});
console.log(`FewShot Lab is running at ${host.url}`);
console.log('Open that address in a browser on this machine. Press Ctrl+C to stop.');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void host.close().then(() => process.exit(0));
  });
}
