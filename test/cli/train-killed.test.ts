// A fine-tuning run killed with SIGKILL partway: the project file is sound, no half model exists, and the
// same command resumes from the last epoch checkpoint to exactly the weights of an uninterrupted run.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, REPO, SHARED_MODELS, SQUEEZENET, needsShared, tmpDir } from '../helpers/env.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
const ENV = { ...process.env, FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_USER_MODELS: tmpDir('fsl-models-') };
const TRAIN = [
  '--backbone',
  SQUEEZENET,
  '--strategy',
  'last-stage',
  '--epochs',
  '6',
  '--seed',
  '5',
  '--json',
];

function fewshot(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: ENV });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface Trained {
  modelId: string;
  params: { weightsSha256: string; resumedFromEpoch: number };
}

test(
  'training killed with SIGKILL resumes from its checkpoint to the same weights; nothing is lost',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const dir = tmpDir('fsl-train-kill-');
    const images = path.join(dir, 'images');
    for (const cls of ['WBC', 'RBC', 'Platelets']) {
      fs.mkdirSync(path.join(images, cls), { recursive: true });
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 12))
        fs.copyFileSync(path.join(BCCD, cls, f), path.join(images, cls, f));
    }
    const base = path.join(dir, 'base.fsl');
    assert.equal(fewshot('project', 'create', base).code, 0);
    assert.equal(fewshot('import', base, images).code, 0);
    const whole = path.join(dir, 'whole.fsl');
    const killed = path.join(dir, 'killed.fsl');
    fs.copyFileSync(base, whole);
    fs.copyFileSync(base, killed);

    const reference = fewshot('train', whole, ...TRAIN);
    assert.equal(reference.code, 0, reference.stderr);
    const expected = JSON.parse(reference.stdout) as Trained;

    const child = spawn(process.execPath, [BIN, 'train', killed, ...TRAIN], { env: ENV, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    const watcher = new Database(killed, { readonly: true, fileMustExist: true });
    const epoch = () =>
      (watcher.prepare('SELECT max(epoch) AS e FROM checkpoints').get() as { e: number | null }).e ?? 0;
    const deadline = Date.now() + 180_000;
    while (epoch() < 2 && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    const savedEpoch = epoch();
    watcher.close();
    assert.ok(savedEpoch >= 2 && savedEpoch < 6, `killed after epoch ${savedEpoch} of 6`);

    const p = Project.open(killed);
    assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
    assert.equal(p.models.list().length, 0, 'no half-trained model');
    assert.equal(p.images.count(), 36, 'every imported image is still there');
    assert.equal(p.jobs.list().find((j) => j.kind === 'train')?.status, 'failed', 'the run is marked');
    p.close();

    const again = fewshot('train', killed, ...TRAIN);
    assert.equal(again.code, 0, again.stderr);
    const resumed = JSON.parse(again.stdout) as Trained;
    assert.equal(resumed.params.resumedFromEpoch, savedEpoch);
    assert.equal(resumed.params.weightsSha256, expected.params.weightsSha256);
    const q = Project.open(killed);
    assert.equal(
      q.db.prepare('SELECT count(*) AS n FROM checkpoints').pluck().get(),
      0,
      'checkpoint dropped',
    );
    assert.equal(q.models.list().length, 1);
    q.close();
  },
);
