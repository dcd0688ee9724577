// Prints feature-extraction throughput for SqueezeNet and the ResNet18 topology: raw ORT on preprocessed
// tensors, decode-only, the pipeline limit 1/(1/ORT + 1/decode), end-to-end from JPEG files to cached
// features, and peak RSS for 1k and 5k images (each size in its own process, so peaks do not mix).
//
//   npm run bench:features [-- --sizes 1000,5000 --models squeezenet1_1-imagenet,resnet18-random]

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { computeFeatures } from '../src/main/engine/features/project-features.ts';
import { importFolder } from '../src/main/engine/import/import-folder.ts';
import { Project } from '../src/main/store/project.ts';
import {
  bccdDataset,
  bccdFiles,
  decodeOnly,
  GENERATED,
  pipelineLimit,
  rawOrt,
  REPO,
  requireShared,
} from './lib.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000' },
    models: { type: 'string', default: 'squeezenet1_1-imagenet,resnet18-random' },
    child: { type: 'string' },
    folder: { type: 'string' },
  },
});

/** Child: import a folder and compute its features; prints JSON with timings and peak RSS. */
async function child(model: string, folder: string): Promise<void> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-bench-')), 'bench.fsl');
  const p = Project.create(file);
  const t0 = performance.now();
  const imp = await importFolder(p, folder);
  const importSeconds = (performance.now() - t0) / 1000;
  const b = await Backbone.load(resolveBackbone(model));
  const r = await computeFeatures(p, b, { batchSize: 16 });
  await b.release();
  p.close();
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  process.stdout.write(
    `${JSON.stringify({ images: imp.added, importPerSecond: imp.added / importSeconds, e2e: r.imagesPerSecond, maxRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`,
  );
}

async function main(): Promise<void> {
  if (values.child) return child(values.child, values.folder as string);
  requireShared();
  ensureRandomResNet18(GENERATED);
  const sizes = values.sizes.split(',').map(Number);
  const folders = new Map<number, string>();
  for (const n of sizes) folders.set(n, await bccdDataset(n));
  console.log(
    `FewShot Lab feature benchmark · ${os.cpus().length} cores · ${os.cpus()[0]?.model ?? ''} · node ${process.version}`,
  );
  for (const model of values.models.split(',')) {
    const b = await Backbone.load(resolveBackbone(model));
    const ort = await rawOrt(b);
    const decode = await decodeOnly(b, bccdFiles().slice(0, 600));
    await b.release();
    const limit = pipelineLimit(ort, decode);
    console.log(`\n${model}`);
    console.log(`  raw ORT (batch 16, preprocessed tensors)   ${ort.toFixed(1)} images/s`);
    console.log(`  decode + preprocess only                   ${decode.toFixed(1)} images/s`);
    console.log(`  pipeline limit 1/(1/ORT + 1/decode)        ${limit.toFixed(1)} images/s`);
    for (const n of sizes) {
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(REPO, 'bench', 'features.ts'),
          '--child',
          model,
          '--folder',
          folders.get(n) as string,
        ],
        {
          encoding: 'utf8',
          env: process.env,
        },
      );
      if (r.status !== 0) {
        console.log(`  ${n} images: failed\n${r.stderr}`);
        continue;
      }
      const m = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as {
        images: number;
        importPerSecond: number;
        e2e: number;
        maxRssMiB: number;
      };
      console.log(
        `  ${String(m.images).padStart(5)} images: end-to-end ${m.e2e.toFixed(1)} images/s = ${(m.e2e / limit).toFixed(2)} × limit · import ${m.importPerSecond.toFixed(0)} files/s · peak RSS ${m.maxRssMiB.toFixed(0)} MiB`,
      );
    }
  }
}

await main();
