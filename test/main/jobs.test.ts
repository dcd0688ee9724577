// Long work runs in job workers: while a fine-tuning trains, the backend answers other requests; a
// cancel stops it within a step, saves no model, and the job's row and audit entry say cancelled. One job
// id from the request to the row; a cancel reaches a worker even inside a synchronous loop.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { AuditEntryView, JobEvent, JobSummary } from '../../src/shared/contract.ts';
import type { ModelRecord, ReviewData, TrainResult } from '../../src/shared/results.ts';
import { testBackend, type TestBackend } from '../helpers/backend.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

let t: TestBackend;

/** `perClass` BCCD crops of each class, in a folder of their own. */
function smallBccd(perClass: number): string {
  const root = tmpDir('fsl-jobs-data-');
  for (const cls of ['Platelets', 'RBC', 'WBC']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, perClass))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  return root;
}

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-jobs-models-'));
  // No hard stop within the tests' time: a job that ends cancelled saw the cancel itself.
  t = testBackend({ cancelGraceMs: 600_000 });
  await t.call('project.create', { file: path.join(tmpDir(), 'jobs.fsl') });
  const { jobId } = await t.call<{ jobId: string }>('dataset.import', { folder: smallBccd(12) });
  assert.equal((await t.ended(jobId)).type, 'done');
});
after(() => t?.close());

const isEnd = (jobId: string) => (e: JobEvent) => e.jobId === jobId && e.type !== 'progress';

test(
  'while fine-tuning runs, a thumbnail and the data-set summary are answered; cancel stops it within a step and saves nothing',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const { jobId } = await t.call<{ jobId: string }>('train.start', {
      backbone: SQUEEZENET,
      strategy: 'last-stage',
      seed: 3,
      epochs: 60,
    });
    // The job has its row from the request on, under the same id.
    const listed = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
    assert.equal(listed.jobs[0]?.id, jobId);
    assert.ok(['queued', 'running'].includes(listed.jobs[0]?.status ?? ''));

    await t.when((e) => e.jobId === jobId && e.type === 'progress' && e.progress.phase === 'training');
    const images = await t.call<{ images: { id: number }[] }>('dataset.images', { offset: 0, limit: 1 });
    const thumb = await t.backend.thumbnail(images.images[0]?.id as number, 128);
    const summary = await t.call<{ total: number }>('dataset.summary', {});
    assert.equal(thumb.subarray(0, 2).toString('hex'), 'ffd8', 'a JPEG thumbnail');
    assert.equal(summary.total, 36);
    // Both answers came while the job was still running: it has not ended, and goes on training.
    assert.equal(t.events.some(isEnd(jobId)), false, 'answered before the job ended');
    const before = t.events.length;
    await t.when(
      (e) =>
        t.events.indexOf(e) >= before &&
        e.jobId === jobId &&
        e.type === 'progress' &&
        e.progress.phase === 'training',
    );
    const running = (await t.call<{ jobs: JobSummary[] }>('jobs.list', {})).jobs.find((j) => j.id === jobId);
    assert.equal(running?.status, 'running');
    assert.equal(running?.progress?.phase, 'training');
    assert.ok((running?.losses.length ?? 0) > 0, 'the loss so far, for a window that re-attaches');

    // Cancel with the id jobs.list gave.
    const cancel = await t.call<{ cancelled: boolean }>('jobs.cancel', { jobId: running?.id });
    assert.equal(cancel.cancelled, true);
    const atCancel = t.events.length;
    const end = await t.ended(jobId);
    assert.equal(end.type, 'cancelled');
    const stepsAfter = t.events
      .slice(atCancel)
      .filter((e) => e.jobId === jobId && e.type === 'progress' && e.progress.phase === 'training').length;
    assert.ok(stepsAfter <= 2, `stopped within a step (${stepsAfter} steps after the cancel)`);

    assert.deepEqual(
      (await t.call<{ models: ModelRecord[] }>('train.models', {})).models,
      [],
      'no model saved',
    );
    const row = (await t.call<{ jobs: JobSummary[] }>('jobs.list', {})).jobs.find((j) => j.id === jobId);
    assert.equal(row?.status, 'cancelled');
    const audit = await t.call<{ entries: AuditEntryView[] }>('audit.list', { limit: 5 });
    assert.equal(audit.entries[0]?.action, 'job.cancelled');
    assert.deepEqual(audit.entries[0]?.details, { jobId, kind: 'train' });
    assert.ok(!audit.entries.some((e) => e.action === 'train'), 'not audited as a training');
    assert.equal((await t.call<{ cancelled: boolean }>('jobs.cancel', { jobId })).cancelled, false);
  },
);

test(
  'a cancel reaches a job inside a synchronous loop (thousands of episodes), and nothing is stored',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const trained = await t.call<{ jobId: string }>('train.start', {
      backbone: SQUEEZENET,
      strategy: 'linear',
      seed: 1,
    });
    const done = await t.ended(trained.jobId);
    assert.equal(done.type, 'done');
    const modelId = done.type === 'done' && done.kind === 'train' ? done.result.modelId : '';
    const protocol = { kind: 'episodes', shots: 5, episodes: 10000 } as const;
    const { jobId } = await t.call<{ jobId: string }>('review.start', { modelId, protocol });
    await t.when(
      (e) => e.jobId === jobId && e.type === 'progress' && e.progress.phase === 'cross-validation',
    );
    await t.call('jobs.cancel', { jobId });
    const end = await t.ended(jobId);
    assert.equal(end.type, 'cancelled', 'the episodes loop saw the cancel');
    const got = await t.call<{ review: unknown }>('review.get', { modelId, protocol });
    assert.equal(got.review, null, 'a cancelled evaluation is not stored');
  },
);

test(
  'a full fine-tune reports one bar over the whole run: decoding first (not "frozen layers"), then steps, with the pace the Train screen measured',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const { jobId } = await t.call<{ jobId: string }>('train.start', {
      backbone: SQUEEZENET,
      strategy: 'full',
      seed: 1,
      epochs: 2,
      pace: { stepSeconds: 0.3, prefixSecondsPerImage: 0.005, batchSize: 16 },
    });
    assert.equal((await t.ended(jobId)).type, 'done');
    const progress = t.events.flatMap((e) =>
      e.jobId === jobId && e.type === 'progress' ? [e.progress] : [],
    );
    const phases = [...new Set(progress.map((p) => p.phase))];
    assert.equal(phases[0], 'decoding and augmenting', `phases: ${phases.join(', ')}`);
    assert.ok(phases.includes('training'));
    const fractions = progress.map((p) => p.fraction);
    assert.ok(
      fractions.every((f) => f !== undefined && f >= 0 && f <= 1 + 1e-9),
      'every update carries the whole run',
    );
    for (let i = 1; i < fractions.length; i++)
      assert.ok((fractions[i] as number) >= (fractions[i - 1] as number) - 1e-9, `never goes back (${i})`);
    const lastDecoding = progress.filter((p) => p.phase === 'decoding and augmenting').at(-1);
    // The bar is not full when the first phase is: its own done/total is, the run's is a fraction.
    assert.equal(lastDecoding?.done, lastDecoding?.total);
    assert.ok((lastDecoding?.fraction ?? 1) < 0.9, `after decoding: ${lastDecoding?.fraction}`);
    assert.ok(Math.abs((progress.at(-1)?.fraction ?? 0) - 1) < 1e-9, 'the last step fills it');

    // Review shows the model itself on its validation split, at once: no second fine-tuning, and the
    // figures are the model's estimate (the Train screen's row), its ECE the cross-fitted one.
    const end = t.events.find(isEnd(jobId));
    const trained = (end?.type === 'done' ? end.result : null) as TrainResult | null;
    assert.ok(trained?.estimate, 'a validation split gave an estimate');
    const review = (await t.call<{ review: ReviewData | null }>('review.get', { modelId: trained.modelId }))
      .review;
    assert.equal(review?.evaluation.source, 'model-validation');
    assert.equal(review?.evaluation.testPredictions, trained.estimate.n);
    assert.equal(review?.evaluation.accuracy.mean, trained.estimate.accuracy.mean);
    assert.equal(review?.evaluation.calibration?.method, 'cross-fitted');
    assert.equal(review?.evaluation.calibration?.ece, trained.estimate.calibration?.ece);
    assert.equal(
      review?.evaluation.predictions.length,
      review?.evaluation.testPredictions,
      'every validation image with its prediction, for the confusion matrix and its cells',
    );
    // The report is made from that stored Review (only it carries that source) and says what it is.
    const out = path.join(tmpDir(), 'full.pdf');
    const report = await t.call<{ jobId: string }>('report.export', {
      kind: 'evaluation',
      modelId: trained.modelId,
      out,
    });
    assert.equal((await t.ended(report.jobId)).type, 'done');
    if (spawnSync('pdftotext', ['-v']).status === 0) {
      const text = execFileSync('pdftotext', [out, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
      assert.match(text, /Evaluation: the model's own validation split/);
      assert.match(text, /accuracy may read slightly high/);
      assert.doesNotMatch(text, /object Object/);
    } else console.warn('pdftotext (poppler-utils) is not installed: the report text is not checked');
  },
);
