// The 16-bit policy: full range (0–65535 onto 0–255) or each image's 0.5–99.5 % range, chosen per project,
// recorded in every model, used by batch classification and stated in the export.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { loadDataset } from '../../src/main/engine/classify/dataset.ts';
import { exportModel } from '../../src/main/engine/export/bundle.ts';
import { decoder, toRgb } from '../../src/main/engine/image/decode.ts';
import { brightest16, percentileWindow, stretch, windowed } from '../../src/main/engine/image/windowing.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import { makeDicom } from '../helpers/dicom.ts';
import { SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';
import { solidPng, twelveBit, twelveBitFolder } from '../helpers/images.ts';

async function range(bytes: Uint8Array): Promise<[number, number]> {
  const { data } = await toRgb(decoder(bytes));
  let lo = 255;
  let hi = 0;
  for (const v of data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [lo, hi];
}

test('percentiles by nearest rank, a clipped stretch, and the full range for a flat image', () => {
  const ramp = Uint16Array.from({ length: 1000 }, (_, i) => i);
  assert.deepEqual(percentileWindow(ramp), [4, 994]);
  assert.deepEqual(percentileWindow(ramp, 0, 100), [0, 999]);
  assert.deepEqual([...stretch(Uint16Array.from([4, 994, 0, 999, 499]), 4, 994)], [0, 255, 0, 255, 128]);
  assert.deepEqual([...stretch(Uint16Array.from([1000, 1000]), 1000, 1000)], [4, 4]);
});

test('a 12-bit image in a 16-bit PNG is nearly black by the full range and spans 0–255 by percentile', async () => {
  const png = await twelveBit(64, 48, (x, y) => (x * 64 + y * 7) % 4096);
  assert.equal((await sharp(png).metadata()).depth, 'ushort');
  const [, fullHi] = await range(await windowed(png, 'full'));
  assert.ok(fullHi <= 16, `full range: brightest ${fullHi}`);
  const stretched = await windowed(png, 'percentile');
  assert.equal((await sharp(stretched).metadata()).depth, 'uchar');
  const [lo, hi] = await range(stretched);
  assert.ok(lo <= 2 && hi >= 253, `percentile: ${lo}..${hi}`);
  // A few hot pixels do not set the window: the 99.5th percentile ignores them.
  const hot = await twelveBit(64, 48, (x, y) => (x === 0 && y < 5 ? 65535 : (x * 64 + y * 7) % 4096));
  const [, hotHi] = await range(await windowed(hot, 'percentile'));
  assert.equal(hotHi, 255);
  const { data } = await toRgb(decoder(await windowed(hot, 'percentile')));
  const mean = data.reduce((a, v) => a + v, 0) / data.length;
  assert.ok(mean > 100, `the rest is not crushed to black by a min–max window (mean ${mean.toFixed(0)})`);
  // 8-bit images and DICOM are left exactly as they are.
  const eight = await solidPng(8, 8);
  assert.equal(await windowed(eight, 'percentile'), eight);
  const dcm = makeDicom({ width: 4, height: 4, values: Array.from({ length: 16 }, (_, i) => i * 100) });
  assert.equal(await windowed(dcm, 'percentile'), dcm);
  // Colour 16-bit keeps three channels.
  const rgb16 = await sharp(png).toColourspace('rgb16').png().toBuffer();
  const [, rgbHi] = await range(await windowed(rgb16, 'percentile'));
  assert.ok(rgbHi >= 253);
});

test(
  'the project setting selects the features, is recorded in the model, and batch and export follow the model',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    useModelDirs(tmpDir('fsl-win-models-'));
    const root = tmpDir('fsl-win-');
    await twelveBitFolder(root);
    const p = Project.create(path.join(tmpDir(), 'win.fsl'));
    await importFolder(p, root);
    const backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
    try {
      const full = await loadDataset(p, backbone);
      p.setHighBitDepth('percentile');
      assert.equal(p.audit.list().at(-1)?.action, 'settings.highBitDepth');
      const stretched = await loadDataset(p, backbone);
      // Both sets of features are kept, under their own views, and they differ.
      const sha = p.images.list()[0]?.sha256 as string;
      const a = p.features.get(sha, backbone.id, 'eval');
      const b = p.features.get(sha, backbone.id, p.featureView());
      assert.ok(a && b && p.featureView() !== 'eval');
      assert.ok(a.some((v, i) => Math.abs(v - (b[i] as number)) > 1e-3));
      assert.equal(full.x.length, stretched.x.length);

      const { modelId } = await trainModel(p, backbone, { strategy: 'linear', seed: 1, estimate: false });
      const model = p.models.get(modelId);
      assert.ok(model);
      assert.equal(model.params.highBitDepth, 'percentile');
      // The project's setting changes later; the batch still reads files the way the model was trained.
      p.setHighBitDepth('full');
      const out = path.join(tmpDir(), 'batch.csv');
      const runner = await loadModelRunner(p, model, backbone);
      const r = await classifyFolder(p, runner, model, root, { outCsv: out });
      const rows = fs.readFileSync(out, 'utf8').trim().split('\n').slice(1);
      const right = rows.filter(
        (l) => l.split(',')[0]?.replace(/"/g, '').split('/')[0] === l.split(',')[1]?.replace(/"/g, ''),
      );
      assert.equal(r.files, 12);
      assert.equal(right.length, 12, 'the training images are classified as trained');
      // Probabilities equal the model's on the percentile features it was trained on, not the full-range ones.
      const byPath = new Map(rows.map((l) => [l.split(',')[0]?.replace(/"/g, ''), l.split(',')]));
      for (const img of p.images.list()) {
        const expected = runner.probabilities(
          p.features.get(img.sha256, backbone.id, 'eval+p0.5-99.5') as Float32Array,
        );
        const got = byPath.get(img.relPath)?.slice(4, 6).map(Number) ?? [];
        for (let c = 0; c < 2; c++)
          assert.ok(Math.abs((got[c] as number) - (expected[c] as number)) < 1e-4, img.relPath);
      }

      const dir = tmpDir('fsl-win-export-');
      await exportModel(p, modelId, resolveBackbone(SQUEEZENET), backbone, dir, { parityImages: 12 });
      const spec = JSON.parse(fs.readFileSync(path.join(dir, 'preprocessing.json'), 'utf8')) as {
        steps: { op: string; highBitDepth?: { policy: string; low?: number; high?: number } }[];
      };
      const hb = spec.steps.find((s) => s.op === 'decode')?.highBitDepth;
      assert.deepEqual([hb?.policy, hb?.low, hb?.high], ['percentile', 0.5, 99.5]);
      assert.match(fs.readFileSync(path.join(dir, 'model-card.md'), 'utf8'), /0\.5–99\.5 percentile range/);
    } finally {
      await backbone.release();
      p.close();
    }
  },
);

test('the import counts 16-bit images that hold 10- to 14-bit data, so the app can offer the stretch', async () => {
  const root = tmpDir('fsl-dim16-');
  fs.mkdirSync(path.join(root, 'cells'));
  fs.writeFileSync(path.join(root, 'cells', 'twelve-a.png'), await twelveBit(16, 16, (x, y) => x * 200 + y));
  fs.writeFileSync(path.join(root, 'cells', 'twelve-b.png'), await twelveBit(16, 16, (x, y) => y * 250 + x));
  fs.writeFileSync(path.join(root, 'cells', 'sixteen.png'), await twelveBit(16, 16, (x, y) => x * 4000 + y));
  fs.writeFileSync(path.join(root, 'cells', 'eight.png'), await solidPng(16, 16, [10, 10, 10]));
  assert.equal(await brightest16(fs.readFileSync(path.join(root, 'cells', 'twelve-a.png'))), 3015);
  assert.equal(await brightest16(fs.readFileSync(path.join(root, 'cells', 'eight.png'))), null);
  const p = Project.create(path.join(tmpDir(), 'dim.fsl'));
  const s = await importFolder(p, root);
  assert.equal(s.added, 4);
  assert.equal(s.dim16Bit, 2);
  p.close();
});
