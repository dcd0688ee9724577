// Shared pieces of the benchmarks: data sets built from ../shared, and the raw ORT and decode-only rates
// that every throughput figure is compared with.

import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { preprocessInto, tensorSize } from '../src/main/engine/image/preprocess.ts';

export const REPO = path.resolve(import.meta.dirname, '..');
export const SHARED = path.resolve(REPO, '..', 'shared');
export const BCCD = path.join(SHARED, 'data', 'bccd-cells');
export const OMNIGLOT = path.join(SHARED, 'data', 'omniglot');
export const CACHE = path.join(REPO, '.cache');
export const GENERATED = path.join(CACHE, 'models');

process.env.FEWSHOT_MODELS = [path.join(SHARED, 'models'), GENERATED].join(path.delimiter);

export function requireShared(): void {
  if (!fs.existsSync(BCCD)) {
    console.error(`../shared is absent (${SHARED}): nothing to measure.`);
    process.exit(1);
  }
}

export function bccdFiles(): string[] {
  return ['WBC', 'RBC', 'Platelets'].flatMap((c) =>
    fs
      .readdirSync(path.join(BCCD, c))
      .sort()
      .map((f) => path.join(BCCD, c, f)),
  );
}

/** n JPEG files in class folders: the BCCD crops, then re-encoded variants (flips, rotations) to fill. */
export async function bccdDataset(n: number): Promise<string> {
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

/** Images/s of the backbone alone on preprocessed tensors, batch 16, over ~4 s. */
export async function rawOrt(b: Backbone): Promise<number> {
  const batch = 16;
  const input = new Float32Array(batch * tensorSize(b.spec)).map((_, i) => Math.sin(i));
  await b.embed(input, batch);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 4000) {
    await b.embed(input, batch);
    n += batch;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** Images/s of decode + resize + crop + normalise alone, 16 in flight as in the pipeline. */
export async function decodeOnly(b: Backbone, files: string[]): Promise<number> {
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

export function pipelineLimit(ort: number, decode: number): number {
  return 1 / (1 / ort + 1 / decode);
}
