// Prints, for 5 classes × 20 images and 10 epochs on this machine, per strategy and backbone: wall time,
// training images/s, the share in the frozen prefix and in the trained tail, the GMAC/s the training steps
// achieve against this machine's inference GMAC/s on the same backbone, and peak RSS. Each row runs in a
// child process of its own, so its peak RSS is its own.
// Classes: BCCD's three, plus two made by re-encoding (rotated) crops, so five exist.
//
//   npm run bench:finetune [-- --epochs 10 --per-class 20 --backbone resnet18-random --strategy last-stage
//                              --threads 2 --device cpu]

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { Backbone, backboneGraph } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { fitHead } from '../src/main/engine/classify/heads.ts';
import { embedAll } from '../src/main/engine/features/pipeline.ts';
import { finetune, type TrainingImage } from '../src/main/engine/finetune/finetune.ts';
import { buildTrainGraphs } from '../src/main/engine/finetune/train-graph.ts';
import { findFeatureTensor } from '../src/main/engine/onnx/graph.ts';
import { encodeModel } from '../src/main/engine/onnx/model.ts';
import { withMallocTunables } from '../src/main/engine/onnx/process-env.ts';
import { QueuedSession } from '../src/main/engine/onnx/session.ts';
import { DEFAULT_AUGMENT } from '../src/shared/augment.ts';
import { BCCD, GENERATED, requireShared } from './lib.ts';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    'per-class': { type: 'string', default: '20' },
    backbone: { type: 'string', default: 'squeezenet1_1-imagenet,resnet18-random' },
    strategy: { type: 'string', default: 'linear,last-stage,last-two-stages,full' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    device: { type: 'string', default: 'cpu' },
    child: { type: 'boolean', default: false },
  },
});

interface Row {
  strategy: string;
  backbone: string;
  runtime: string;
  wall: number;
  imagesPerSecond: number;
  prefix: number;
  tail: number;
  tailGmacs: number | null;
  inferenceGmacs: number | null;
  peakRssMiB: number;
}

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

/** This machine's inference rate on the whole backbone (batch 16, tensors in memory), in GMAC/s. */
async function inferenceGmacs(id: string, threads: number, device: 'cpu' | 'gpu' | 'auto'): Promise<number> {
  const entry = resolveBackbone(id);
  const model = backboneGraph(entry);
  const features = entry.output.name ?? findFeatureTensor(model);
  const input = model.graph.inputs[0]?.name as string;
  const macs = buildTrainGraphs({
    model,
    cut: input,
    features,
    inputShape: [3, 224, 224],
    classes: 2,
    optimizer: 'sgd',
  }).forwardMacs;
  const session = await QueuedSession.create(encodeModel(model), { threads, device });
  const x = new ort.Tensor('float32', new Float32Array(16 * 3 * 224 * 224).fill(0.5), [16, 3, 224, 224]);
  await session.run({ [entry.input.name]: x });
  const t0 = performance.now();
  const runs = 3;
  for (let i = 0; i < runs; i++) await session.run({ [entry.input.name]: x });
  const seconds = (performance.now() - t0) / 1000;
  await session.release();
  return (runs * 16 * macs) / seconds / 1e9;
}

async function runRow(backbone: string, strategy: string): Promise<Row> {
  ensureRandomResNet18(GENERATED);
  const per = Number(values['per-class']);
  const epochs = Number(values.epochs);
  const threads = Number(values.threads);
  const device = values.device as 'cpu' | 'gpu' | 'auto';
  const items = await fiveClasses(per);
  const classes = ['WBC', 'RBC', 'Platelets', 'WBC-rotated', 'RBC-rotated'];
  const entry = resolveBackbone(backbone);
  const rss = (): number => process.resourceUsage().maxRSS / 1024;
  if (strategy === 'linear') {
    // linear: features (ORT) + the head, the whole cost.
    const t0 = performance.now();
    const b = await Backbone.load(entry, { threads, device });
    const x: Float32Array[] = [];
    for await (const batch of embedAll(
      b,
      items.map((it, i) => ({ item: i, load: it.bytes })),
    ))
      for (const r of batch) if (r.ok) x.push(r.vector);
    const tFeat = (performance.now() - t0) / 1000;
    fitHead('linear', { x, y: items.map((i) => i.label), classes });
    const wall = (performance.now() - t0) / 1000;
    await b.release();
    return {
      strategy,
      backbone,
      runtime: 'ort',
      wall,
      imagesPerSecond: items.length / wall,
      prefix: tFeat / wall,
      tail: (wall - tFeat) / wall,
      tailGmacs: null,
      inferenceGmacs: null,
      peakRssMiB: rss(),
    };
  }
  const r = await finetune(entry, classes, items, {
    strategy: strategy as 'last-stage' | 'last-two-stages' | 'full',
    epochs,
    augment: DEFAULT_AUGMENT,
    seed: 1,
    threads,
    device,
  });
  const seen = r.steps > 0 ? items.length * epochs : 0;
  const peak = rss();
  return {
    strategy,
    backbone,
    runtime: r.providers[0] ?? 'cpu',
    wall: r.seconds.total,
    imagesPerSecond: seen / r.seconds.total,
    prefix: r.seconds.prefix / r.seconds.total,
    tail: r.seconds.tail / r.seconds.total,
    tailGmacs: (seen * r.macs.step) / r.seconds.tail / 1e9,
    inferenceGmacs: await inferenceGmacs(backbone, threads, device),
    peakRssMiB: peak,
  };
}

function print(row: Row): void {
  const pct = (v: number): string => `${(100 * v).toFixed(0).padStart(4)} %`;
  const gm = row.tailGmacs === null ? '     —' : row.tailGmacs.toFixed(1).padStart(6);
  const inf = row.inferenceGmacs === null ? '     —' : row.inferenceGmacs.toFixed(1).padStart(6);
  console.log(
    `${row.strategy.padEnd(16)} ${row.backbone.padEnd(24)} ${row.runtime.padEnd(7)} ${row.wall.toFixed(1).padStart(7)} ${row.imagesPerSecond.toFixed(1).padStart(9)}  ${pct(row.prefix)} ${pct(row.tail)}  ${gm} ${inf}  ${row.peakRssMiB.toFixed(0).padStart(6)}`,
  );
}

async function main(): Promise<void> {
  requireShared();
  const backbones = values.backbone.split(',');
  const strategies = values.strategy.split(',');
  if (values.child) {
    const row = await runRow(backbones[0] as string, strategies[0] as string);
    console.log(`ROW ${JSON.stringify(row)}`);
    return;
  }
  console.log(
    `FewShot Lab fine-tuning benchmark · 5 classes × ${values['per-class']} images · ${values.epochs} epochs · batch 16 · ${values.threads} threads of ${os.cpus().length} cores · ${values.device} · onnxruntime-node ${ort.env.versions.common} · node ${process.version}${(withMallocTunables(process.env).GLIBC_TUNABLES ?? '').includes('hugetlb') ? ' · glibc malloc tunables' : ''}`,
  );
  console.log(
    'strategy         backbone                 device     wall s  images/s  prefix   tail  tail GMAC/s  infer GMAC/s  peak RSS MiB',
  );
  const self = fileURLToPath(import.meta.url);
  for (const backbone of backbones)
    for (const strategy of strategies) {
      const args = ['--import', 'tsx', self, '--child', '--backbone', backbone, '--strategy', strategy];
      for (const k of ['epochs', 'per-class', 'threads', 'device'] as const)
        args.push(`--${k}`, String(values[k]));
      try {
        // Each run starts as the app's engine process does: with glibc's memory tunables (process-env.ts;
        // FEWSHOT_MALLOC=default runs without them).
        const out = execFileSync(process.execPath, args, {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
          env: withMallocTunables(process.env),
        });
        const line = out.split('\n').find((l) => l.startsWith('ROW '));
        if (line) print(JSON.parse(line.slice(4)) as Row);
      } catch (e) {
        console.log(
          `${strategy.padEnd(16)} ${backbone.padEnd(24)} failed: ${(e as Error).message.split('\n')[0]}`,
        );
      }
    }
  console.log(
    '\nimages/s counts training images seen (images × epochs) per second of wall time; linear sees each once.',
  );
  console.log(
    'tail GMAC/s: forward + backward multiply–accumulates of the trained part (3 × forward) per second of training steps;',
  );
  console.log(
    'infer GMAC/s: the whole backbone classifying batches of 16 on the same runtime, threads and device.',
  );
  console.log(
    'Compare with ../shared/peer/torch_seed_bench.py (see its README) on the same machine in the same sitting.',
  );
}

await main();
