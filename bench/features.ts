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
import sharp from 'sharp';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { computeFeatures } from '../src/main/engine/features/project-features.ts';
import { preprocessInto, tensorSize } from '../src/main/engine/image/preprocess.ts';
import { importFolder } from '../src/main/engine/import/import-folder.ts';
import { Project } from '../src/main/store/project.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const SHARED = path.resolve(REPO, '..', 'shared');
const BCCD = path.join(SHARED, 'data', 'bccd-cells');
const CACHE = path.join(REPO, '.cache');
const GENERATED = path.join(CACHE, 'models');

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000' },
    models: { type: 'string', default: 'squeezenet1_1-imagenet,resnet18-random' },
    child: { type: 'string' },
    folder: { type: 'string' },
  },
});

process.env.FEWSHOT_MODELS = [path.join(SHARED, 'models'), GENERATED].join(path.delimiter);

function bccdFiles(): string[] {
  return ['WBC', 'RBC', 'Platelets'].flatMap((c) =>
    fs
      .readdirSync(path.join(BCCD, c))
      .sort()
      .map((f) => path.join(BCCD, c, f)),
  );
}

/** n JPEG files in class folders: the BCCD crops, then re-encoded variants (flips, rotations) to fill. */
async function dataset(n: number): Promise<string> {
  const dir = path.join(CACHE, 'bench', `bccd-${n}`);
  if (fs.existsSync(path.join(dir, '.complete'))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  const files = bccdFiles();
  for (let i = 0; i < n; i++) {
    const src = files[i % files.length] as string;
    const cls = path.basename(path.dirname(src));
    const variant = Math.floor(i / files.length);
    fs.mkdirSync(path.join(dir, cls), { recursive: true });
    const out = path.join(dir, cls, `${variant}-${path.basename(src)}`);
    if (variant === 0) fs.copyFileSync(src, out);
    else {
      let img = sharp(src);
      if (variant & 1) img = img.flop();
      if (variant & 2) img = img.flip();
      if (variant & 4) img = img.rotate(90);
      await img.jpeg({ quality: 92 - variant }).toFile(out);
    }
  }
  fs.writeFileSync(path.join(dir, '.complete'), '');
  return dir;
}

async function rawOrt(b: Backbone): Promise<number> {
  const batch = 16;
  const input = new Float32Array(batch * tensorSize(b.spec)).map((_, i) => Math.sin(i));
  await b.embed(input, batch); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 4000) {
    await b.embed(input, batch);
    n += batch;
  }
  return n / ((performance.now() - t0) / 1000);
}

async function decodeOnly(b: Backbone, files: string[]): Promise<number> {
  const size = tensorSize(b.spec);
  const bytes = files.map((f) => fs.readFileSync(f));
  const t0 = performance.now();
  for (let i = 0; i < bytes.length; i += 16) {
    await Promise.all(
      bytes.slice(i, i + 16).map((buf) => preprocessInto(buf, b.spec, new Float32Array(size), 0)),
    );
  }
  return bytes.length / ((performance.now() - t0) / 1000);
}

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
  if (!fs.existsSync(BCCD)) {
    console.error(`../shared is absent (${SHARED}): nothing to measure.`);
    process.exit(1);
  }
  ensureRandomResNet18(GENERATED);
  const sizes = (values.sizes).split(',').map(Number);
  const folders = new Map<number, string>();
  for (const n of sizes) folders.set(n, await dataset(n));
  console.log(
    `FewShot Lab feature benchmark · ${os.cpus().length} cores · ${os.cpus()[0]?.model ?? ''} · node ${process.version}`,
  );
  for (const model of (values.models).split(',')) {
    const b = await Backbone.load(resolveBackbone(model));
    const ort = await rawOrt(b);
    const decode = await decodeOnly(b, bccdFiles().slice(0, 600));
    await b.release();
    const limit = 1 / (1 / ort + 1 / decode);
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
