// Prints, for 5 classes × 20 images and 10 epochs on this machine: wall time per strategy and backbone,
// images/s, and the share spent in the frozen prefix (ONNX Runtime) vs the trained tail (TensorFlow.js).
// Classes: BCCD's three, plus two made by re-encoding (flipped and rotated) crops, so five exist.
//
//   npm run bench:finetune [-- --epochs 10 --per-class 20]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { fitHead } from '../src/main/engine/classify/heads.ts';
import { embedAll } from '../src/main/engine/features/pipeline.ts';
import { finetune, type TrainingImage } from '../src/main/engine/finetune/finetune.ts';
import { DEFAULT_AUGMENT } from '../src/shared/augment.ts';
import { BCCD, GENERATED, requireShared } from './lib.ts';

const { values } = parseArgs({
  options: { epochs: { type: 'string', default: '10' }, 'per-class': { type: 'string', default: '20' } },
});

async function fiveClasses(per: number): Promise<TrainingImage[]> {
  const out: TrainingImage[] = [];
  const classes = ['WBC', 'RBC', 'Platelets'];
  for (const [k, c] of classes.entries()) {
    for (const f of fs.readdirSync(path.join(BCCD, c)).sort().slice(0, per)) {
      const b = fs.readFileSync(path.join(BCCD, c, f));
      out.push({ bytes: () => b, label: k });
    }
  }
  // Two more classes: rotated WBC and rotated RBC crops (the task is artificial; the timing is real).
  for (const [k, c] of [
    [3, 'WBC'],
    [4, 'RBC'],
  ] as const) {
    for (const f of fs
      .readdirSync(path.join(BCCD, c))
      .sort()
      .slice(per, 2 * per)) {
      const b = await sharp(path.join(BCCD, c, f))
        .rotate(90)
        .jpeg({ quality: 90 })
        .toBuffer();
      out.push({ bytes: () => b, label: k });
    }
  }
  return out;
}

async function main(): Promise<void> {
  requireShared();
  ensureRandomResNet18(GENERATED);
  const per = Number(values['per-class']);
  const epochs = Number(values.epochs);
  const items = await fiveClasses(per);
  const classes = ['WBC', 'RBC', 'Platelets', 'WBC-rotated', 'RBC-rotated'];
  console.log(
    `FewShot Lab fine-tuning benchmark · ${classes.length} classes × ${per} images · ${epochs} epochs · ${os.cpus().length} cores · node ${process.version}`,
  );
  console.log('strategy     backbone                  backend   wall s   images/s   prefix   tail');
  for (const id of ['squeezenet1_1-imagenet', 'resnet18-random']) {
    const entry = resolveBackbone(id);
    // linear: features (ORT) + the head, the whole cost.
    const t0 = performance.now();
    const b = await Backbone.load(entry);
    const x: Float32Array[] = [];
    for await (const batch of embedAll(
      b,
      items.map((it, i) => ({ item: i, load: it.bytes })),
    ))
      for (const r of batch) if (r.ok) x.push(r.vector);
    const tFeat = (performance.now() - t0) / 1000;
    fitHead('linear', { x, y: items.map((i) => i.label), classes });
    const tLin = (performance.now() - t0) / 1000;
    await b.release();
    console.log(
      `linear       ${id.padEnd(24)}  ort       ${tLin.toFixed(1).padStart(6)}   ${(items.length / tLin).toFixed(1).padStart(8)}   ${((100 * tFeat) / tLin).toFixed(0).padStart(4)} %  ${((100 * (tLin - tFeat)) / tLin).toFixed(0).padStart(4)} %`,
    );
    for (const strategy of ['last-stage', 'full'] as const) {
      if (strategy === 'full' && id === 'resnet18-random') {
        console.log(
          `full         ${id.padEnd(24)}  (skipped: full ResNet18 training on 2 CPU cores takes hours)`,
        );
        continue;
      }
      const r = await finetune(entry, classes, items, {
        strategy,
        epochs,
        augment: DEFAULT_AUGMENT,
        seed: 1,
      });
      const seen = items.length * epochs;
      console.log(
        `${strategy.padEnd(12)} ${id.padEnd(24)}  ${r.backend.padEnd(8)}  ${r.seconds.total.toFixed(1).padStart(6)}   ${(seen / r.seconds.total).toFixed(1).padStart(8)}   ${((100 * r.seconds.prefix) / r.seconds.total).toFixed(0).padStart(4)} %  ${((100 * r.seconds.tail) / r.seconds.total).toFixed(0).padStart(4)} %`,
      );
    }
  }
  console.log(
    '\nimages/s counts training images seen (images × epochs) per second of wall time; linear sees each once.',
  );
  console.log(
    'Targets: linear ≤ 5 s including feature extraction; last-stage on the ResNet18 topology ≤ 120 s.',
  );
}

await main();
