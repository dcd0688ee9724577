import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { CHANNELS } from '../../src/shared/contract.ts';
import { ERROR_CODES } from '../../src/shared/errors.ts';
import { testBackend } from '../helpers/backend.ts';
import { tmpDir, useModelDirs } from '../helpers/env.ts';

useModelDirs(tmpDir('fsl-backend-models-'));
const t = testBackend();
const { backend, events } = t;
after(() => backend.close());

async function footprint(): Promise<string> {
  const summary = await backend.invoke('dataset.summary', {});
  const audit = await backend.invoke('audit.list', { limit: 1000 });
  const jobs = await backend.invoke('jobs.list', {});
  return JSON.stringify([summary, audit, jobs]);
}

test('every channel answers random payloads with a typed result, never a throw or a partial write', async () => {
  await backend.invoke('project.create', { file: path.join(tmpDir(), 'fuzz.fsl') });
  const before = await footprint();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...CHANNELS),
      fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true, withSet: true }),
      async (channel, input) => {
        // Side-effecting channels get inputs that their schemas refuse, so nothing is written.
        const r = await backend.invoke(channel, input);
        assert.equal(typeof r.ok, 'boolean');
        if (!r.ok) assert.ok((ERROR_CODES as readonly string[]).includes(r.error.code), r.error.code);
      },
    ),
    { numRuns: 300, seed: 42 },
  );
  // Nothing the fuzzer sent changed the project: no image, label, job or audit entry was written.
  assert.equal(await footprint(), before);
  assert.deepEqual(events, [], 'no job was started');
});

test('inputs are parsed strictly: unknown keys, wrong types and unknown channels are INVALID_INPUT', async () => {
  const cases: [string, unknown][] = [
    ['project.open', { file: 'x.fsl', extra: 1 }],
    ['project.open', { file: 42 }],
    ['project.open', null],
    ['dataset.images', { offset: -1, limit: 10 }],
    ['dataset.relabel', { imageIds: [], className: 'A' }],
    ['dataset.relabel', { imageIds: [1.5], className: 'A' }],
    ['augment.preview', { imageId: 1, spec: { rotate: 1000 }, n: 8, seed: 0 }],
    ['batch.start', { modelId: 'm', folder: '/x', out: '/y.csv', minConfidence: 2 }],
    ['__proto__', {}],
    ['constructor', {}],
    ['no.such.channel', {}],
  ];
  for (const [channel, input] of cases) {
    const r = await backend.invoke(channel, input);
    assert.equal(r.ok, false, channel);
    if (!r.ok) assert.equal(r.error.code, 'INVALID_INPUT', `${channel}: ${r.error.message}`);
  }
});

test('handler failures come back as error data with stable codes', async () => {
  const missing = await backend.invoke('project.open', { file: path.join(tmpDir(), 'absent.fsl') });
  assert.deepEqual(missing.ok ? null : missing.error.code, 'NOT_FOUND');
  const image = await backend.invoke('augment.preview', { imageId: 999999, spec: {}, n: 2, seed: 0 });
  assert.deepEqual(image.ok ? null : image.error.code, 'NOT_FOUND');
  const model = await backend.invoke('review.start', { modelId: 'nope' });
  assert.deepEqual(model.ok ? null : model.error.code, 'NOT_FOUND');
  assert.deepEqual(events, [], 'no job was started by a refused call');
});

test('the audit trail is listed newest first with its chain status, and exported whole', async () => {
  await backend.invoke('project.create', { file: path.join(tmpDir(), 'audit.fsl') });
  const list = await backend.invoke('audit.list', { limit: 10 });
  assert.ok(list.ok);
  const v = list.value as { entries: { action: string }[]; intact: boolean };
  assert.equal(v.intact, true);
  assert.equal(v.entries[0]?.action, 'project.create');
  const out = path.join(tmpDir(), 'audit.json');
  const ex = await backend.invoke('audit.export', { out });
  assert.ok(ex.ok);
  const end = await t.ended((ex.value as { jobId: string }).jobId);
  assert.equal(end.type, 'done');
  assert.deepEqual(end.type === 'done' && end.kind === 'audit-export' ? end.result.entries : null, 1);
  const json = JSON.parse(fs.readFileSync(out, 'utf8')) as {
    verifiedIntact: boolean;
    entries: { hash: string; prevHash: string }[];
  };
  assert.equal(json.verifiedIntact, true);
  assert.match(json.entries[0]?.hash ?? '', /^[0-9a-f]{64}$/);
});

test('the 16-bit setting is read and changed through the contract, and audited', async () => {
  const created = await backend.invoke('project.create', { file: path.join(tmpDir(), 'settings.fsl') });
  assert.ok(created.ok);
  assert.equal((created.value as { highBitDepth: string }).highBitDepth, 'full');
  const set = await backend.invoke('project.settings', { highBitDepth: 'percentile' });
  assert.ok(set.ok);
  assert.equal((set.value as { highBitDepth: string }).highBitDepth, 'percentile');
  const bad = await backend.invoke('project.settings', { highBitDepth: 'log' });
  assert.equal(bad.ok ? null : bad.error.code, 'INVALID_INPUT');
  const audit = await backend.invoke('audit.list', { limit: 1 });
  assert.ok(audit.ok);
  assert.equal(
    (audit.value as { entries: { action: string }[] }).entries[0]?.action,
    'settings.highBitDepth',
  );
});

test('recovery channels: a damaged file is PROJECT_CORRUPT on open; recover and restore need existing files', async () => {
  const file = path.join(tmpDir(), 'broken.fsl');
  fs.writeFileSync(file, Buffer.alloc(8192, 0x5a));
  const open = await backend.invoke('project.open', { file });
  assert.equal(open.ok ? null : open.error.code, 'PROJECT_CORRUPT');
  const info = await backend.invoke('project.recovery', { file });
  assert.ok(info.ok);
  assert.ok((info.value as { problems: string[] }).problems.length > 0);
  const rec = await backend.invoke('project.recover', { file });
  assert.equal(rec.ok ? null : rec.error.code, 'PROJECT_CORRUPT');
  const missing = await backend.invoke('project.restore', {
    file,
    backup: path.join(tmpDir(), 'none.backup'),
  });
  assert.equal(missing.ok ? null : missing.error.code, 'NOT_FOUND');
  assert.deepEqual(fs.readFileSync(file), Buffer.alloc(8192, 0x5a), 'the damaged file is unchanged');
});

test('a file that is not a project (by its name) is PROJECT_INVALID, not a damaged project', async () => {
  const file = path.join(tmpDir(), 'photo.jpg');
  fs.writeFileSync(file, Buffer.alloc(8192, 0x5a));
  const open = await backend.invoke('project.open', { file });
  assert.equal(open.ok ? null : open.error.code, 'PROJECT_INVALID');
});

test('the window sends full paths: a relative one is INVALID_INPUT naming it, and nothing is created', async () => {
  const cwdFile = path.join(process.cwd(), 'lab-relative.fsl');
  for (const [channel, input] of [
    ['project.create', { file: 'lab-relative.fsl' }],
    ['dataset.import', { folder: 'cells' }],
    ['batch.start', { modelId: 'm', folder: '/data/in', out: 'results.csv', minConfidence: 0.5 }],
    ['files.list', { kind: 'folder', path: '../etc' }],
  ] as const) {
    const r = await backend.invoke(channel, input);
    assert.equal(r.ok, false, channel);
    if (!r.ok) {
      assert.equal(r.error.code, 'INVALID_INPUT', channel);
      assert.match(r.error.message, /is not a full path/, channel);
    }
  }
  assert.equal(fs.existsSync(cwdFile), false);
  const ok = await backend.invoke('project.create', { file: path.join(tmpDir(), 'full.fsl') });
  assert.equal(ok.ok, true);
});
