// "Try an image" on a real BCCD project with the real SqueezeNet backbone: the prediction equals what a
// batch run says for the same file, the nearest training image of a training image is itself, dropped
// bytes go to a temporary file the job removes, and a damaged file fails with its typed reason.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { parseCsv } from '../../src/main/engine/import/csv.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { tryImage, tryRequest } from '../../src/main/services/try-image.ts';
import { Project } from '../../src/main/store/project.ts';
import { FewShotError } from '../../src/shared/errors.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

let project: Project;
let modelId = '';
let data = '';
const CLASSES = ['Platelets', 'RBC', 'WBC'];

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-try-models-'));
  data = tmpDir('fsl-try-data-');
  for (const c of CLASSES) {
    fs.mkdirSync(path.join(data, c));
    for (const f of fs.readdirSync(path.join(BCCD, c)).sort().slice(0, 10))
      fs.copyFileSync(path.join(BCCD, c, f), path.join(data, c, f));
  }
  project = Project.create(path.join(tmpDir(), 'try.fsl'));
  await importFolder(project, data);
  const b = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  try {
    modelId = (await trainModel(project, b, { strategy: 'linear', seed: 1, estimate: false })).modelId;
  } finally {
    await b.release();
  }
});
after(() => project?.close());

test(
  'a new image: the same class and probabilities as a batch run, neighbours by similarity',
  { skip: needsShared },
  async () => {
    const file = path.join(BCCD, 'WBC', fs.readdirSync(path.join(BCCD, 'WBC')).sort()[40] as string);
    const r = await tryImage(project, tryRequest(project, { modelId, file }));
    assert.equal(r.name, path.basename(file));
    assert.deepEqual(r.classes, CLASSES);
    assert.ok(Math.abs(r.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    // The batch classifier on a folder holding just that file.
    const folder = tmpDir('fsl-try-batch-');
    fs.copyFileSync(file, path.join(folder, 'x.jpg'));
    const model = project.models.get(modelId);
    assert.ok(model);
    const b = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
    try {
      const out = path.join(tmpDir(), 'one.csv');
      await classifyFolder(project, await loadModelRunner(project, model, b), model, folder, { outCsv: out });
      const row = parseCsv(fs.readFileSync(out, 'utf8'))[1] as string[];
      assert.equal(r.predicted, row[1]);
      CLASSES.forEach((_, i) =>
        assert.ok(Math.abs((r.probabilities[i] as number) - Number(row[4 + i])) < 1e-5),
      );
    } finally {
      await b.release();
    }
    assert.equal(r.neighbours.length, 6);
    for (let i = 1; i < r.neighbours.length; i++)
      assert.ok((r.neighbours[i - 1]?.similarity as number) >= (r.neighbours[i]?.similarity as number));
    assert.match(r.neighboursBy, /head was trained on/);
  },
);

test('a training image is its own nearest neighbour', { skip: needsShared }, async () => {
  const rel = `RBC/${fs.readdirSync(path.join(data, 'RBC')).sort()[3] as string}`;
  const r = await tryImage(project, tryRequest(project, { modelId, file: path.join(data, rel) }));
  assert.equal(r.neighbours[0]?.relPath, rel);
  assert.ok(r.neighbours[0]?.similarity > 0.9999);
  assert.equal(r.predicted, 'RBC');
});

test(
  'dropped bytes: written to a temporary file the job removes; empty and damaged files are refused',
  { skip: needsShared },
  async () => {
    const file = path.join(
      data,
      'Platelets',
      fs.readdirSync(path.join(data, 'Platelets')).sort()[0] as string,
    );
    const req = tryRequest(project, {
      modelId,
      name: '../../etc/cell 1.jpg',
      data: fs.readFileSync(file).toString('base64'),
    });
    assert.equal(path.dirname(path.dirname(req.file)), path.resolve(os.tmpdir()));
    assert.equal(path.basename(req.file), 'cell 1.jpg');
    assert.ok(fs.existsSync(req.file));
    const r = await tryImage(project, req);
    assert.equal(r.name, '../../etc/cell 1.jpg');
    assert.equal(r.predicted, 'Platelets');
    assert.equal(fs.existsSync(path.dirname(req.file)), false, 'the temporary folder is gone');

    assert.throws(
      () => tryRequest(project, { modelId, name: 'x.png', data: '' }),
      (e: unknown) => e instanceof FewShotError && e.code === 'INVALID_INPUT',
    );
    const bad = tryRequest(project, {
      modelId,
      name: 'x.png',
      data: Buffer.from('not really a png').toString('base64'),
    });
    await assert.rejects(
      tryImage(project, bad),
      (e: unknown) => e instanceof FewShotError && e.code === 'NOT_AN_IMAGE',
    );
    assert.equal(fs.existsSync(path.dirname(bad.file)), false);
    const truncated = tryRequest(project, {
      modelId,
      name: 'cut.jpg',
      data: fs.readFileSync(file).subarray(0, 400).toString('base64'),
    });
    await assert.rejects(
      tryImage(project, truncated),
      (e: unknown) => e instanceof FewShotError && e.code === 'CORRUPT_IMAGE',
    );
    assert.throws(
      () => tryRequest(project, { modelId, file: path.join(data, 'missing.jpg') }),
      (e: unknown) => e instanceof FewShotError && e.code === 'NOT_FOUND',
    );
  },
);
