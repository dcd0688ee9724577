// Results are kept: a model's evaluation is made once and reused by Review and the report until the data
// changes; batch runs stay listed with their counts and results, paged in SQL, and a report can be made
// for any of them later. Every job — review, report, export included — has a row under its request's id.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import type { AuditEntryView, JobEvent, JobSummary } from '../../src/shared/contract.ts';
import type { BatchRunView, PredictionRow, ReviewData } from '../../src/shared/results.ts';
import { testBackend, type TestBackend } from '../helpers/backend.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

let t: TestBackend;
let file: string;
let modelId: string;

function copyBccd(perClass: number): string {
  const root = tmpDir('fsl-results-data-');
  for (const cls of ['Platelets', 'RBC', 'WBC']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, perClass))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  return root;
}

async function job(channel: string, input: unknown): Promise<JobEvent & { type: 'done' }> {
  const { jobId } = await t.call<{ jobId: string }>(channel, input);
  const end = await t.ended(jobId);
  assert.equal(end.type, 'done', `${channel}: ${end.type === 'failed' ? end.error.message : end.type}`);
  return end;
}

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-results-models-'));
  t = testBackend();
  file = path.join(tmpDir(), 'results.fsl');
  await t.call('project.create', { file });
  await job('dataset.import', { folder: copyBccd(20) });
  const trained = await job('train.start', { backbone: SQUEEZENET, strategy: 'linear', seed: 2 });
  modelId = trained.kind === 'train' ? trained.result.modelId : '';
});
after(() => t?.close());

function evaluationRows(): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM evaluations').pluck().get() as number;
  } finally {
    db.close();
  }
}

test(
  'Review opened twice evaluates once; the report reuses it; changed data makes a new one',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    assert.equal((await t.call<{ review: ReviewData | null }>('review.get', { modelId })).review, null);
    const first = await job('review.start', { modelId });
    assert.equal(evaluationRows(), 1);
    // The second visit finds the stored figures: no job, the same numbers.
    const stored = (await t.call<{ review: ReviewData | null }>('review.get', { modelId })).review;
    assert.ok(stored);
    assert.deepEqual(stored.evaluation, first.kind === 'review' ? first.result.evaluation : null);
    // The report uses them too: it runs no cross-validation of its own.
    const out = path.join(tmpDir(), 'report.pdf');
    const { jobId } = await t.call<{ jobId: string }>('report.export', { kind: 'evaluation', modelId, out });
    assert.equal((await t.ended(jobId)).type, 'done');
    const phases = t.events
      .filter((e) => e.jobId === jobId && e.type === 'progress')
      .map((e) => e.type === 'progress' && e.progress.phase);
    assert.ok(!phases.includes('cross-validation'), `report phases: ${phases.join(', ')}`);
    assert.equal(evaluationRows(), 1);
    assert.equal(fs.readFileSync(out).subarray(0, 5).toString(), '%PDF-');
    // A relabel changes the data: the stored evaluation no longer applies.
    const img = (
      await t.call<{ images: { id: number }[] }>('dataset.images', { className: 'RBC', offset: 0, limit: 1 })
    ).images[0];
    await t.call('dataset.relabel', { imageIds: [img?.id], className: 'WBC' });
    assert.equal((await t.call<{ review: ReviewData | null }>('review.get', { modelId })).review, null);
    await t.call('dataset.relabel', { imageIds: [img?.id], className: 'RBC' });
    assert.ok(
      (await t.call<{ review: ReviewData | null }>('review.get', { modelId })).review,
      'back to the same data',
    );
  },
);

test(
  'batch runs are listed with counts; results are paged and filtered; a report is made later and audited like the CLI',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const incoming = tmpDir('fsl-results-in-');
    for (const f of fs.readdirSync(path.join(BCCD, 'WBC')).sort().slice(20, 45))
      fs.copyFileSync(path.join(BCCD, 'WBC', f), path.join(incoming, f));
    fs.writeFileSync(path.join(incoming, 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0x00]));
    const out = path.join(tmpDir(), 'out.csv');
    const done = await job('batch.start', { modelId, folder: incoming, out, minConfidence: 0.9 });
    const runId = done.kind === 'batch' ? done.result.runId : '';
    // Another screen, another day: the run is still listed.
    const { runs } = await t.call<{ runs: BatchRunView[] }>('batch.runs', {});
    const run = runs.find((r) => r.id === runId);
    assert.ok(run);
    assert.equal(run.files, 26);
    assert.equal(run.errors, 1);
    assert.equal(run.ok + run.uncertain + run.errors, 26);
    assert.equal(run.status, 'done');
    assert.equal(run.folder, path.basename(incoming));
    // Pages in path order, filters by status and by predicted class (never error rows for a class).
    const all = await t.call<{ total: number; rows: PredictionRow[] }>('batch.results', {
      runId,
      filter: 'all',
      offset: 0,
      limit: 2000,
    });
    assert.equal(all.total, 26);
    const paths = all.rows.map((r) => r.relPath);
    assert.deepEqual(paths, [...paths].sort());
    const page = await t.call<{ total: number; rows: PredictionRow[] }>('batch.results', {
      runId,
      filter: 'all',
      offset: 10,
      limit: 5,
    });
    assert.deepEqual(page.rows, all.rows.slice(10, 15));
    for (const filter of ['uncertain', 'error', { predicted: 'WBC' }] as const) {
      const r = await t.call<{ total: number; rows: PredictionRow[] }>('batch.results', {
        runId,
        filter,
        offset: 0,
        limit: 2000,
      });
      const expected = all.rows.filter((x) =>
        typeof filter === 'string'
          ? x.status === filter
          : x.predicted === filter.predicted && x.status !== 'error',
      );
      assert.deepEqual(r.rows, expected, JSON.stringify(filter));
      assert.equal(r.total, expected.length);
    }
    const pdf = path.join(tmpDir(), 'batch.pdf');
    await job('report.export', { kind: 'batch', runId, out: pdf });
    assert.equal(fs.readFileSync(pdf).subarray(0, 5).toString(), '%PDF-');
    const audit = await t.call<{ entries: AuditEntryView[] }>('audit.list', { limit: 3 });
    const entry = audit.entries.find((e) => e.action === 'report');
    assert.deepEqual(entry?.details, { kind: 'batch', runId, bytes: fs.statSync(pdf).size });
    const classified = audit.entries.find((e) => e.action === 'classify');
    assert.equal(classified?.details.modelId, modelId);
  },
);

test(
  'every job has a row under the id its request returned, with one kind name for batches',
  { skip: needsShared },
  async () => {
    const { jobs } = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
    const started = t.events.filter((e) => e.type === 'done').map((e) => [e.jobId, e.kind] as const);
    for (const [id, kind] of started)
      assert.equal(jobs.find((j) => j.id === id)?.kind, kind, `${kind} ${id}`);
    for (const kind of ['import', 'train', 'review', 'report', 'batch'])
      assert.ok(
        jobs.some((j) => j.kind === kind && j.status === 'done'),
        kind,
      );
  },
);
