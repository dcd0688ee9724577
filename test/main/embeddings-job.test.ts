// The window's embeddings export: `dataset.exportEmbeddings` answers with a job id at once (or a typed
// error for a path it cannot write), the job streams progress and ends with what was written.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { JobEvent, JobSummary } from '../../src/shared/contract.ts';
import { testBackend, type TestBackend } from '../helpers/backend.ts';
import { readCsv } from '../helpers/embeddings.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';
import { readNpy } from '../helpers/npy.ts';

let t: TestBackend;

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-embed-job-models-'));
  const root = tmpDir('fsl-embed-job-data-');
  for (const cls of ['RBC', 'WBC']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 4))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  t = testBackend();
  await t.call('project.create', { file: path.join(tmpDir(), 'embed-job.fsl') });
  const { jobId } = await t.call<{ jobId: string }>('dataset.import', { folder: root });
  assert.equal((await t.ended(jobId)).type, 'done');
});
after(() => t?.close());

test(
  'dataset.exportEmbeddings runs as a job: progress, then the rows × dims written',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const out = path.join(tmpDir('fsl-embed-job-out-'), 'features.npy');
    const { jobId } = await t.call<{ jobId: string }>('dataset.exportEmbeddings', {
      backbone: SQUEEZENET,
      out,
      device: 'cpu',
    });
    const listed = await t.call<{ jobs: JobSummary[] }>('jobs.list', {});
    assert.equal(listed.jobs[0]?.id, jobId);
    assert.equal(listed.jobs[0]?.kind, 'embeddings');
    const end = await t.ended(jobId);
    assert.equal(end.type, 'done', JSON.stringify(end));
    const r = (end as Extract<JobEvent, { type: 'done'; kind: 'embeddings' }>).result;
    assert.deepEqual([r.format, r.rows, r.dim, r.out], ['npy', 8, 512, out]);
    assert.deepEqual(readNpy(out).shape, [8, 512]);
    assert.deepEqual(
      readCsv(r.rowsFile as string)
        .rows.map((row) => row[2])
        .sort(),
      ['RBC', 'RBC', 'RBC', 'RBC', 'WBC', 'WBC', 'WBC', 'WBC'],
    );
    const phases = t.events.filter((e) => e.jobId === jobId && e.type === 'progress');
    assert.ok(phases.length > 0, 'progress was streamed');

    // Asked again: the file exists, and the answer says so before any job starts.
    const again = await t.invoke('dataset.exportEmbeddings', { backbone: SQUEEZENET, out });
    assert.equal(again.ok ? 'ok' : again.error.code, 'ALREADY_EXISTS');
    const relative = await t.invoke('dataset.exportEmbeddings', { backbone: SQUEEZENET, out: 'f.csv' });
    assert.equal(relative.ok ? 'ok' : relative.error.code, 'INVALID_INPUT');
    const ext = await t.invoke('dataset.exportEmbeddings', { backbone: SQUEEZENET, out: `${out}.parquet` });
    assert.ok(!ext.ok && ext.error.code === 'INVALID_INPUT' && /\.csv.*\.npy/.test(ext.error.message));
    const noBackbone = await t.invoke('dataset.exportEmbeddings', { backbone: 'nope', out: `${out}.csv` });
    assert.equal(noBackbone.ok ? 'ok' : noBackbone.error.code, 'NOT_FOUND');
    const forced = await t.call<{ jobId: string }>('dataset.exportEmbeddings', {
      backbone: SQUEEZENET,
      out,
      force: true,
    });
    assert.equal((await t.ended(forced.jobId)).type, 'done');
  },
);
