// Adding a backbone from the window, on a first run with none: a job of the app that needs no project,
// whose result names the backbone, which is then listed as installed; a wrong path is refused at once and
// a file that is not a backbone fails the job with a typed error.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import type { BackboneInfo } from '../../src/shared/backbones.ts';
import type { JobSummary } from '../../src/shared/jobs.ts';
import { testBackend, type TestBackend } from '../helpers/backend.ts';
import { GENERATED_MODELS, tmpDir, useModelDirs } from '../helpers/env.ts';

let t: TestBackend;
let files: string;

before(() => {
  useModelDirs(tmpDir('fsl-add-user-models-'), []);
  files = tmpDir('fsl-add-files-');
  const entry = ensureRandomResNet18(GENERATED_MODELS);
  fs.copyFileSync(path.join(GENERATED_MODELS, entry.file), path.join(files, 'resnet18-random.onnx'));
  fs.writeFileSync(path.join(files, 'broken.onnx'), 'not a model');
  t = testBackend();
});
after(() => t.close());

async function usable(): Promise<string[]> {
  const { models } = await t.call<{ models: BackboneInfo[] }>('models.list', {});
  return models.filter((m) => m.present && m.supported).map((m) => m.id);
}

test('a wrong path is refused before any job starts', async () => {
  const cases: [string, string][] = [
    ['resnet18.onnx', 'INVALID_INPUT'],
    [path.join(files, 'absent.onnx'), 'NOT_FOUND'],
    [files, 'INVALID_INPUT'],
  ];
  for (const [file, code] of cases) {
    const r = await t.invoke('models.add', { file });
    assert.equal(r.ok ? 'ok' : r.error.code, code, file);
  }
  assert.deepEqual(t.events, []);
});

test('with no project open, a backbone is added as a job and is usable at once', async () => {
  assert.deepEqual(await usable(), [], 'a first run with no backbone');
  const { jobId } = await t.call<{ jobId: string }>('models.add', {
    file: path.join(files, 'resnet18-random.onnx'),
  });
  const listed = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
  const mine = listed.jobs.find((j) => j.id === jobId);
  if (mine) assert.equal(mine.kind, 'backbone-add', 'listed while it runs, with no project open');
  const end = await t.ended(jobId);
  assert.equal(end.type, 'done', JSON.stringify(end));
  assert.ok(
    t.events.some((e) => e.jobId === jobId && e.type === 'progress'),
    'it reports progress',
  );
  if (end.type === 'done' && end.kind === 'backbone-add')
    assert.deepEqual(end.result, { id: 'resnet18-random', architecture: 'resnet18', featureDim: 512 });
  assert.deepEqual(await usable(), ['resnet18-random']);
  // Finished, it is no longer among the app's running jobs.
  const after = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
  assert.ok(!after.jobs.some((j) => j.id === jobId));
});

test('a file that is not a backbone fails the job with a typed error, in plain words', async () => {
  const { jobId } = await t.call<{ jobId: string }>('models.add', { file: path.join(files, 'broken.onnx') });
  const end = await t.ended(jobId);
  assert.equal(end.type, 'failed');
  if (end.type === 'failed') {
    assert.equal(end.error.code, 'MODEL_INVALID');
    assert.match(end.error.message, /broken\.onnx/);
  }
});

test('an app job does not keep a project from being opened', async () => {
  const { jobId } = await t.call<{ jobId: string }>('models.add', {
    file: path.join(files, 'resnet18-random.onnx'),
    id: 'resnet18-again',
  });
  const created = await t.invoke('project.create', { file: path.join(tmpDir(), 'lab.fsl') });
  assert.ok(created.ok, JSON.stringify(created));
  assert.equal((await t.ended(jobId)).type, 'done');
  // The project's own job list carries no row for it.
  const jobs = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
  assert.ok(!jobs.jobs.some((j) => j.id === jobId));
});
