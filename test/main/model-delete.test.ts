// Deleting a trained model: its batch runs, predictions and stored evaluations go with it in one
// transaction, the audit chain stays intact, exported files stay; refused while a job uses the model.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { deleteModel } from '../../src/main/services/model-delete.ts';
import { Project } from '../../src/main/store/project.ts';
import { isFewShotError } from '../../src/shared/errors.ts';
import type { ModelDeleted } from '../../src/shared/results.ts';
import { testBackend } from '../helpers/backend.ts';
import { BCCD, REPO, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

const PER_CLASS = 6;

let project: Project | undefined;
let backbone: Backbone | undefined;
let file = '';
let folder = '';
let doomed = '';
let kept = '';
let lastOne = '';
let lastName = '';
const exported: string[] = [];

/** A few BCCD crops per class: enough to train on and to classify. */
function subset(n: number): string {
  const dir = tmpDir('fsl-delete-images-');
  for (const cls of ['Platelets', 'RBC', 'WBC']) {
    fs.mkdirSync(path.join(dir, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, n))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(dir, cls, f));
  }
  return dir;
}

async function batchRun(modelId: string): Promise<void> {
  const p = project as Project;
  const record = p.models.get(modelId);
  assert.ok(record);
  const out = path.join(tmpDir('fsl-delete-out-'), 'results.csv');
  exported.push(out);
  assert.ok(backbone, 'the backbone is loaded once and lent to each run');
  await classifyFolder(p, await loadModelRunner(p, record, backbone), record, folder, {
    outCsv: out,
  });
}

function count(table: string, where: string, arg: string): number {
  return (project as Project).db
    .prepare<[string], number>(`SELECT count(*) FROM ${table} WHERE ${where}`)
    .pluck()
    .get(arg) as number;
}

function footprint(modelId: string) {
  return {
    models: count('models', 'id = ?', modelId),
    runs: count('batch_runs', 'model_id = ?', modelId),
    predictions: count('predictions', 'run_id IN (SELECT id FROM batch_runs WHERE model_id = ?)', modelId),
    evaluations: count('evaluations', 'model_id = ?', modelId),
  };
}

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-user-models-'));
  file = path.join(tmpDir(), 'delete.fsl');
  project = Project.create(file);
  folder = subset(PER_CLASS);
  await importFolder(project, folder);
  backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  doomed = (await trainModel(project, backbone, { strategy: 'linear', seed: 1, estimate: false })).modelId;
  kept = (await trainModel(project, backbone, { strategy: 'prototype', seed: 2, estimate: false })).modelId;
  lastOne = (await trainModel(project, backbone, { strategy: 'prototype', seed: 3, estimate: false }))
    .modelId;
  lastName = project.models.get(lastOne)?.name ?? '';
  await batchRun(doomed);
  await batchRun(doomed);
  await batchRun(kept);
  project.evaluations.put(
    {
      modelId: doomed,
      protocol: { kind: 'kfold', folds: 3 },
      seed: 0,
      groupAware: true,
      dataFingerprint: 'f',
    },
    { accuracy: 1 },
    null,
  );
});
after(async () => {
  await backbone?.release();
  project?.close();
});

test('an unknown id is NOT_FOUND and deletes nothing', { skip: needsShared }, () => {
  const p = project as Project;
  const audit = p.audit.count();
  assert.throws(
    () => deleteModel(p, 'no-such-model', () => false),
    (e) => isFewShotError(e) && e.code === 'NOT_FOUND',
  );
  assert.equal(p.audit.count(), audit);
  assert.equal(p.models.list().length, 3);
});

test('while a job uses the model, deleting it is refused and nothing changes', { skip: needsShared }, () => {
  const p = project as Project;
  const before = footprint(doomed);
  const audit = p.audit.count();
  const asked: string[] = [];
  assert.throws(
    () =>
      deleteModel(p, doomed.slice(0, 8), (id) => {
        asked.push(id);
        return true;
      }),
    (e) => isFewShotError(e) && e.code === 'INVALID_INPUT' && /job is using/.test(e.message),
  );
  assert.deepEqual(asked, [doomed], 'busy() is asked about the resolved id, not the prefix');
  assert.deepEqual(footprint(doomed), before);
  assert.deepEqual(before, { models: 1, runs: 2, predictions: 6 * PER_CLASS, evaluations: 1 });
  assert.equal(p.audit.count(), audit);
});

test(
  'deleting a model takes its runs, predictions and evaluations, audited; the rest stays',
  { skip: needsShared },
  () => {
    const p = project as Project;
    const record = p.models.get(doomed);
    assert.ok(record);
    const keptBefore = footprint(kept);
    assert.deepEqual(keptBefore, { models: 1, runs: 1, predictions: 3 * PER_CLASS, evaluations: 0 });

    const r = deleteModel(p, doomed.slice(0, 8), () => false);
    assert.deepEqual(r, { modelId: doomed, name: record.name, batchRuns: 2, evaluations: 1 });
    assert.deepEqual(footprint(doomed), { models: 0, runs: 0, predictions: 0, evaluations: 0 });
    assert.equal(p.models.get(doomed), null);
    assert.equal(p.models.artefact(doomed), null);
    assert.deepEqual(footprint(kept), keptBefore, 'the other model and its run are untouched');
    assert.ok(p.models.artefact(kept));
    assert.deepEqual(p.db.pragma('foreign_key_check'), []);

    assert.equal(p.audit.verify(), null, 'the audit chain still verifies');
    const entry = p.audit.latest(1)[0];
    assert.equal(entry?.action, 'model-delete');
    assert.deepEqual(entry.details, {
      modelId: doomed,
      name: record.name,
      strategy: 'linear',
      backbone: SQUEEZENET,
      backboneSha256: record.backboneSha256,
      artefactSha256: record.artefactSha256,
      batchRuns: 2,
      predictions: 6 * PER_CLASS,
      evaluations: 1,
      filesKept: exported.slice(0, 2),
    });
    // Files written outside the project are left where they are.
    for (const f of exported) assert.ok(fs.existsSync(f), f);

    assert.throws(
      () => deleteModel(p, doomed, () => false),
      (e) => isFewShotError(e) && e.code === 'NOT_FOUND',
      'a deleted model is gone',
    );
  },
);

test(
  'through the contract: refused while a batch job runs on the model, then deleted',
  { skip: needsShared },
  async () => {
    // The backend opens the project itself.
    await backbone?.release();
    backbone = undefined;
    project?.close();
    project = undefined;
    const t = testBackend();
    try {
      await t.call('project.open', { file });
      const missing = await t.invoke('model.delete', { modelId: 'nope' });
      assert.equal(missing.ok ? null : missing.error.code, 'NOT_FOUND');

      const { jobId } = await t.call<{ jobId: string }>('batch.start', {
        modelId: kept,
        folder,
        out: path.join(tmpDir(), 'busy.csv'),
        minConfidence: 0.5,
      });
      const busy = await t.invoke('model.delete', { modelId: kept });
      assert.equal(busy.ok ? null : busy.error.code, 'INVALID_INPUT');
      const end = await t.ended(jobId);
      assert.equal(end.type, 'done');

      const r = await t.call<ModelDeleted>('model.delete', { modelId: kept });
      assert.equal(r.modelId, kept);
      assert.equal(r.batchRuns, 2);
      assert.equal(r.evaluations, 0);
      const left = await t.call<{ models: { id: string }[] }>('train.models', {});
      assert.deepEqual(
        left.models.map((m) => m.id),
        [lastOne],
      );
      assert.deepEqual(await t.call('batch.runs', {}), { runs: [] });
      const audit = await t.call<{ entries: { action: string }[]; intact: boolean }>('audit.list', {
        limit: 1,
      });
      assert.equal(audit.intact, true);
      assert.equal(audit.entries[0]?.action, 'model-delete');
    } finally {
      await t.close();
    }
  },
);

function fewshot(...args: string[]) {
  return spawnSync(process.execPath, [path.join(REPO, 'bin', 'fewshot.mjs'), ...args], { encoding: 'utf8' });
}

test('fewshot delete-model FILE --model ID', { skip: needsShared }, () => {
  const r = fewshot('delete-model', file, '--model', lastOne.slice(0, 8), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { modelId: lastOne, name: lastName, batchRuns: 0, evaluations: 0 });
  const again = fewshot('delete-model', file, '--model', lastOne);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /NOT_FOUND/);
  const p = Project.open(file, { readonly: true });
  try {
    assert.equal(p.models.list().length, 0);
    assert.equal(p.audit.verify(), null);
    assert.equal(p.audit.latest(1)[0]?.action, 'model-delete');
  } finally {
    p.close();
  }
});
