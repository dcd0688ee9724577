// Test-time augmentation: the views come from one decode (the first is exactly the single-view crop),
// evaluation scores each test image over its views with a temperature fitted on held-out views, and
// batch classification averages the views of every new file — checked against a recomputation.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import {
  averageSoftmax,
  fitTemperature,
  fitTemperatureViews,
  smoothedNll,
  smoothedNllViews,
} from '../../src/main/engine/classify/calibration.ts';
import { logits } from '../../src/main/engine/classify/heads.ts';
import { deserializeHead } from '../../src/main/engine/classify/serialize.ts';
import { evalCrop, evalViews, normalizeInto, tensorSize } from '../../src/main/engine/image/preprocess.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { parseCsv } from '../../src/main/engine/import/csv.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { computeReview, fitModelTta } from '../../src/main/engine/review.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { ttaViews } from '../../src/shared/tta.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

let project: Project;
let backbone: Backbone;
let modelId = '';
let incoming = '';

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-tta-models-'));
  const root = path.join(tmpDir('fsl-tta-'), 'cells');
  incoming = path.join(tmpDir('fsl-tta-in-'), 'incoming');
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    fs.mkdirSync(path.join(incoming, cls), { recursive: true });
    const files = fs.readdirSync(path.join(BCCD, cls)).sort();
    for (const f of files.slice(0, 15)) fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
    for (const f of files.slice(40, 44))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(incoming, cls, f));
  }
  project = Project.create(path.join(tmpDir(), 'tta.fsl'));
  await importFolder(project, root, {});
  backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  modelId = (await trainModel(project, backbone, { strategy: 'linear', seed: 3, estimate: false })).modelId;
});
after(async () => {
  await backbone?.release();
  project?.close();
});

test(
  'the views: the centre crop exactly, its mirror, and the four corners of the resized image',
  { skip: needsShared },
  async () => {
    const spec = backbone.spec;
    const file = path.join(BCCD, 'WBC', fs.readdirSync(path.join(BCCD, 'WBC')).sort()[0] as string);
    const bytes = fs.readFileSync(file);
    const views = await evalViews(bytes, spec, ttaViews('flip+crops'));
    assert.equal(views.length, 10);
    const centre = await evalCrop(bytes, spec);
    assert.deepEqual(
      Buffer.from(views[0]?.data as Uint8Array),
      Buffer.from(centre.data),
      'view 0 is the single-view crop',
    );
    const W = spec.width;
    const mirror = views[1]?.data as Uint8Array;
    for (const [y, x] of [
      [0, 0],
      [17, 100],
      [223, 223],
    ] as const)
      for (let c = 0; c < 3; c++)
        assert.equal(mirror[(y * W + x) * 3 + c], centre.data[(y * W + (W - 1 - x)) * 3 + c], 'mirrored');
    // The top-left view against libvips' own crop of the same resize (a level of rounding may differ).
    const meta = await sharp(bytes).metadata();
    const shorter = spec.resizeShorter ?? 256;
    const [rw, rh] =
      meta.width <= meta.height
        ? [shorter, Math.floor((shorter * meta.height) / meta.width)]
        : [Math.floor((shorter * meta.width) / meta.height), shorter];
    const tl = await sharp(bytes)
      .resize(rw, rh, { fit: 'fill', kernel: 'linear' })
      .extract({ left: 0, top: 0, width: W, height: spec.height })
      .removeAlpha()
      .raw()
      .toBuffer();
    const got = views[2]?.data as Uint8Array;
    let far = 0;
    for (let i = 0; i < tl.length; i++) if (Math.abs((tl[i] as number) - (got[i] as number)) > 2) far++;
    assert.ok(far < tl.length * 0.001, `${far} samples of the top-left view differ by more than 2 levels`);
  },
);

test('one view: the view-averaged temperature and loss are the single-view ones', () => {
  const rng = new Rng(7);
  const z = Array.from({ length: 40 }, () => Array.from({ length: 3 }, () => rng.normal() * 3));
  const y = z.map(() => Math.floor(rng.uniform(0, 3)));
  const one = z.map((l) => [l]);
  assert.ok(Math.abs(smoothedNllViews(one, y, 1.7) - smoothedNll(z, y, 1.7)) < 1e-9);
  assert.ok(Math.abs(fitTemperatureViews(one, y) - fitTemperature(z, y)) < 1e-6);
  // Two views that disagree: the average is less sure than either, so a smaller T is fitted.
  const two = z.map((l) => [l, l.map((v) => -v)]);
  assert.notEqual(fitTemperatureViews(two, y).toFixed(3), fitTemperature(z, y).toFixed(3));
});

test(
  'Review with test-time augmentation: the same splits, each test image over its views',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const model = project.models.get(modelId);
    assert.ok(model);
    const r = await computeReview(project, backbone, model, { tta: 'flip' });
    const plain = r.evaluation;
    const tta = r.ttaEvaluation;
    assert.ok(tta, 'an evaluation with views');
    assert.deepEqual(tta.protocol, plain.protocol);
    assert.equal(tta.testPredictions, plain.testPredictions);
    assert.equal(tta.tta?.kind, 'flip');
    assert.equal(tta.tta?.views, 2);
    assert.ok(tta.tta?.temperature > 0.01 && tta.tta?.temperature < 100);
    assert.equal(plain.tta, undefined);
    assert.deepEqual(
      tta.predictions.map((p) => p.truth),
      plain.predictions.map((p) => p.truth),
      'the same test images in the same order',
    );
    for (const p of tta.predictions)
      assert.ok(Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-9);
    // The views changed something: some probabilities differ from the single-view ones.
    const moved = tta.predictions.filter((p, i) =>
      p.probabilities.some((q, c) => Math.abs(q - (plain.predictions[i]?.probabilities[c] as number)) > 1e-6),
    ).length;
    assert.ok(moved > tta.predictions.length / 2, `${moved} of ${tta.predictions.length} moved`);
    console.log(
      `TTA (flip) on BCCD 45 images, SqueezeNet linear: accuracy ${(plain.accuracy.mean * 100).toFixed(1)} % → ${(tta.accuracy.mean * 100).toFixed(1)} %, ` +
        `ECE ${((plain.calibration?.ece ?? 0) * 100).toFixed(1)} % → ${((tta.calibration?.ece ?? 0) * 100).toFixed(1)} %, T = ${tta.tta?.temperature.toFixed(3)}`,
    );
    // The views' features are cached: a second run computes none.
    const t0 = performance.now();
    await computeReview(project, backbone, model, { tta: 'flip' });
    assert.ok(performance.now() - t0 < 20_000);
  },
);

test(
  'batch classification with views: every file’s probabilities are the average over its views',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const model = project.models.get(modelId);
    assert.ok(model);
    const fitted = await fitModelTta(project, backbone, model, 'flip');
    assert.match(fitted.from, /5-fold cross-validation over the model's 45 training images/);
    const out = path.join(tmpDir(), 'tta.csv');
    const runner = await loadModelRunner(project, model, backbone);
    const r = await classifyFolder(project, runner, model, incoming, {
      outCsv: out,
      tta: { kind: 'flip', temperature: fitted.temperature, temperatureFrom: fitted.from },
    });
    assert.equal(r.errors, 0);
    assert.equal(r.ok + r.uncertain, 12);
    const run = project.batches.get(r.runId);
    assert.deepEqual((run?.params.tta as { kind: string; views: number }).kind, 'flip');
    assert.equal((run?.params.tta as { temperature: number }).temperature, fitted.temperature);
    // Recompute one file by hand: both views through the backbone, the head's raw logits, softmax at T, mean.
    const rows = parseCsv(fs.readFileSync(out, 'utf8'));
    const header = rows[0] as string[];
    const row = rows.find(
      (x) => x[0] === 'WBC/' + fs.readdirSync(path.join(incoming, 'WBC')).sort()[0],
    ) as string[];
    const head = deserializeHead(project.models.artefact(modelId) as Buffer);
    const views = await evalViews(
      fs.readFileSync(path.join(incoming, row[0] as string)),
      backbone.spec,
      ttaViews('flip'),
    );
    const x = new Float32Array(2 * tensorSize(backbone.spec));
    views.forEach((v, k) => normalizeInto(v, backbone.spec, x, k));
    const feats = await backbone.embed(x, 2);
    const d = feats.length / 2;
    const expected = averageSoftmax(
      [logits(head, feats.subarray(0, d)), logits(head, feats.subarray(d))],
      fitted.temperature,
    );
    model.classes.forEach((c, k) => {
      const got = Number(row[header.indexOf(`p_${c}`)]);
      assert.ok(Math.abs(got - (expected[k] as number)) < 2e-6, `${c}: ${got} vs ${expected[k]}`);
    });
    await runner.release();
  },
);
