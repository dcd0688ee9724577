// Prints the prediction service's throughput and latency: a linear head trained on BCCD (SqueezeNet
// features) is served on an ephemeral loopback port, and concurrent clients post real BCCD crops to
// /v1/predict with the token, one request after another each.
//
//   npm run bench:serve [-- --requests 1000 --clients 8 --backbone squeezenet1_1-imagenet]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { importFolder } from '../src/main/engine/import/import-folder.ts';
import { trainModel } from '../src/main/engine/train.ts';
import { startPredictionService } from '../src/main/services/serve/server.ts';
import { Project } from '../src/main/store/project.ts';
import { BCCD, bccdFiles, requireShared } from './lib.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '8' },
    backbone: { type: 'string', default: 'squeezenet1_1-imagenet' },
  },
});

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  requireShared();
  const total = Number(values.requests);
  const clients = Number(values.clients);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-bench-serve-'));
  process.env.FEWSHOT_DATA_DIR = dir; // the token file goes here, not into the user's data folder
  const file = path.join(dir, 'bench.fsl');
  const created = Project.create(file);
  await importFolder(created, BCCD, { groupsCsv: path.join(BCCD, 'groups.csv') });
  const b = await Backbone.load(resolveBackbone(values.backbone));
  const { modelId } = await trainModel(created, b, { strategy: 'linear', seed: 0, estimate: false });
  await b.release();
  created.close();

  const service = await startPredictionService(file, { modelId, port: 0 });
  const images = bccdFiles().map((f) => fs.readFileSync(f));
  const headers = { Authorization: `Bearer ${service.token}`, 'Content-Type': 'image/jpeg' };
  console.log(
    `FewShot Lab prediction-service benchmark · ${values.backbone} linear · ${total} requests from ${clients} clients on loopback · ${os.cpus().length} cores · node ${process.version}`,
  );
  console.log(
    `  images: ${images.length} BCCD crops, ${(images.reduce((n, x) => n + x.length, 0) / images.length / 1024).toFixed(1)} KiB on average`,
  );

  // Warm-up (decode processes started, runtime's first run), not counted.
  for (let i = 0; i < clients; i++)
    await fetch(`${service.url}/v1/predict`, {
      method: 'POST',
      body: images[i] as (typeof images)[number],
      headers,
    });
  const before = service.stats();

  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = next++; i < total; i = next++) {
        const body = images[i % images.length] as (typeof images)[number];
        const start = performance.now();
        try {
          const r = await fetch(`${service.url}/v1/predict`, { method: 'POST', body, headers });
          const json = (await r.json()) as { class?: string };
          if (r.status !== 200 || typeof json.class !== 'string') errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - start);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const after = service.stats();
  latencies.sort((a, c) => a - c);
  const batches = after.batches - before.batches;
  const served = after.images - before.images;
  console.log(`  requests/s            ${(total / seconds).toFixed(1)}`);
  console.log(
    `  latency p50 / p99     ${percentile(latencies, 0.5).toFixed(1)} ms / ${percentile(latencies, 0.99).toFixed(1)} ms (max ${(latencies.at(-1) as number).toFixed(1)} ms)`,
  );
  console.log(`  errors                ${errors}`);
  console.log(
    `  runtime batches       ${batches}, ${(served / Math.max(1, batches)).toFixed(2)} images each on average`,
  );
  console.log(
    `  peak RSS              ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB (this process: service and clients)`,
  );
  await service.close('bench');
  fs.rmSync(dir, { recursive: true, force: true });
}

await main();
