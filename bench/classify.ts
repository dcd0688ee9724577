// Prints batch-classification throughput beside raw ORT, decode-only and the pipeline limit, measured in
// the same run: a linear head trained on BCCD classifies a folder of re-encoded BCCD crops to CSV.
//
//   npm run bench:classify [-- --files 2000 --batch 16 --backbone squeezenet1_1-imagenet]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../src/main/engine/batch/classify-folder.ts';
import { loadModelRunner } from '../src/main/engine/model-runner.ts';
import { importFolder } from '../src/main/engine/import/import-folder.ts';
import { trainModel } from '../src/main/engine/train.ts';
import { Project } from '../src/main/store/project.ts';
import {
  BCCD,
  bccdDataset,
  bccdFiles,
  decodeOnly,
  GENERATED,
  pipelineLimit,
  rawOrt,
  requireShared,
} from './lib.ts';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '2000' },
    batch: { type: 'string', default: '16' },
    backbone: { type: 'string', default: 'squeezenet1_1-imagenet,resnet18-random' },
  },
});

async function main(): Promise<void> {
  requireShared();
  ensureRandomResNet18(GENERATED);
  const n = Number(values.files);
  const folder = await bccdDataset(n);
  console.log(
    `FewShot Lab batch-classification benchmark · ${n} files · ${os.cpus().length} cores · node ${process.version}`,
  );
  for (const id of values.backbone.split(',')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-bench-'));
    const p = Project.create(path.join(dir, 'bench.fsl'));
    await importFolder(p, BCCD, { groupsCsv: path.join(BCCD, 'groups.csv') });
    const b = await Backbone.load(resolveBackbone(id));
    const ort = await rawOrt(b);
    const decode = await decodeOnly(b, bccdFiles().slice(0, 600));
    const limit = pipelineLimit(ort, decode);
    const { modelId } = await trainModel(p, b, { strategy: 'linear', seed: 0, estimate: false });
    const model = p.models.get(modelId);
    if (!model) throw new Error('model not stored');
    const r = await classifyFolder(p, await loadModelRunner(p, model, b), model, folder, {
      outCsv: path.join(dir, 'out.csv'),
      batchSize: Number(values.batch),
    });
    console.log(`\n${id}`);
    console.log(`  raw ORT (batch 16, preprocessed tensors)   ${ort.toFixed(1)} images/s`);
    console.log(`  decode + preprocess only                   ${decode.toFixed(1)} images/s`);
    console.log(`  pipeline limit 1/(1/ORT + 1/decode)        ${limit.toFixed(1)} images/s`);
    console.log(
      `  classify ${r.files} files to CSV              ${r.imagesPerSecond.toFixed(1)} images/s = ${(r.imagesPerSecond / limit).toFixed(2)} × limit (${r.errors} errors, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)`,
    );
    await b.release();
    p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
