// Runs in a worker thread, as the pool does in a job worker under Electron: decodes the files it is given
// through decoders the main thread's broker hands over (see decoder-broker.test.ts), and posts what
// became of each.

import { parentPort, workerData } from 'node:worker_threads';
import { DecodePool } from '../../src/main/engine/image/decode-pool.ts';
import { brokeredDecoder } from '../../src/main/engine/image/decoder-process.ts';

const { files } = workerData as { files: [string, Uint8Array][] };
const pool = new DecodePool({ launcher: brokeredDecoder, timeoutMs: 3000 });
const results: Record<string, string> = {};
await Promise.all(
  files.map(async ([name, bytes]) => {
    const r = await pool.validate(bytes, { maxPixels: 1e6, maxBytes: 1e7 });
    results[name] = r.ok ? `ok ${r.info.width}x${r.info.height}` : `${r.code}: ${r.message}`;
  }),
);
pool.close();
parentPort?.postMessage({ results, crashes: pool.crashes, timeouts: pool.timeouts });
