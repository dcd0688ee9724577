// Decoding runs in child processes: a decoder that crashes or hangs fails one file with a typed reason,
// and fuzzed images (bit flips, truncations, overwritten and repeated runs) each end as an image or a
// typed rejection.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DecodePool } from '../../src/main/engine/image/decode-pool.ts';
import { evalCrop } from '../../src/main/engine/image/preprocess.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import type { PreprocessSpec } from '../../src/shared/backbones.ts';
import { REJECT_CODES } from '../../src/shared/domain.ts';
import { isFewShotError } from '../../src/shared/errors.ts';
import { mutantCorpus } from '../helpers/corpus.ts';
import { CRASH_MARKER, HANG_MARKER } from '../helpers/decode-faults.ts';
import { REPO, tmpDir } from '../helpers/env.ts';
import { noiseJpeg, solidPng } from '../helpers/images.ts';

const FAULTY = path.join(REPO, 'test', 'helpers', 'faulty-decode-worker.ts');

test('a decoder that crashes or hangs fails that file only; the import and this process go on', async () => {
  const root = tmpDir('fsl-crash-');
  fs.mkdirSync(path.join(root, 'cells'));
  for (let i = 0; i < 6; i++)
    fs.writeFileSync(path.join(root, 'cells', `ok-${i}.png`), await solidPng(20 + i, 20, [i * 30, 10, 10]));
  // Valid PNGs with the markers after IEND: only the fault-injecting worker reacts to them.
  fs.writeFileSync(
    path.join(root, 'cells', 'crashes.png'),
    Buffer.concat([await solidPng(9, 9), Buffer.from(CRASH_MARKER)]),
  );
  fs.writeFileSync(
    path.join(root, 'cells', 'hangs.png'),
    Buffer.concat([await solidPng(8, 8), Buffer.from(HANG_MARKER)]),
  );
  const p = Project.create(path.join(tmpDir(), 'crash.fsl'));
  const pool = new DecodePool({ workerScript: FAULTY, timeoutMs: 3000 });
  try {
    const s = await importFolder(p, root, { decodePool: pool, chunkSize: 4 });
    assert.equal(s.added, 6);
    assert.deepEqual(Object.fromEntries(s.rejected.map((r) => [r.path, r.code])), {
      'cells/crashes.png': 'DECODER_CRASHED',
      'cells/hangs.png': 'DECODE_TIMEOUT',
    });
    assert.match(s.rejected.find((r) => r.code === 'DECODER_CRASHED')?.message ?? '', /SIGSEGV/);
    assert.equal(pool.crashes, 1);
    assert.equal(pool.timeouts, 1);
    // The pool replaced its processes and keeps working.
    const again = await pool.validate(await solidPng(5, 5), { maxPixels: 1e6, maxBytes: 1e6 });
    assert.ok(again.ok);
    assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    pool.close();
    p.close();
  }
});

test('a decoder that cannot start is one typed error, not a rejection of every file', async () => {
  const root = tmpDir('fsl-nostart-');
  fs.writeFileSync(path.join(root, 'a.png'), await solidPng(4, 4));
  const p = Project.create(path.join(tmpDir(), 'nostart.fsl'));
  const pool = new DecodePool({ workerScript: path.join(root, 'no-such-worker.js') });
  await assert.rejects(importFolder(p, root, { decodePool: pool }), (e: unknown) => {
    assert.ok(isFewShotError(e));
    assert.equal(e.code, 'INTERNAL');
    assert.match(e.message, /could not start/);
    return true;
  });
  assert.equal(p.images.count(), 0);
  assert.equal(p.jobs.list().find((j) => j.kind === 'import')?.status, 'failed');
  pool.close();
  p.close();
});

test('fuzzed images (fast-check mutations of every format) each end imported or with a typed reason', async () => {
  const corpus = await mutantCorpus(240, 20261123);
  const root = tmpDir('fsl-fuzz-');
  const dir = path.join(root, 'fuzz');
  fs.mkdirSync(dir);
  for (const [name, bytes] of corpus) fs.writeFileSync(path.join(dir, name), bytes);
  // A few untouched seeds so that "everything was rejected" cannot pass.
  fs.writeFileSync(path.join(dir, 'control.jpg'), await noiseJpeg(30, 30, 99));
  const p = Project.create(path.join(tmpDir(), 'fuzz.fsl'));
  const pool = new DecodePool({ timeoutMs: 20_000 });
  try {
    const s = await importFolder(p, root, { decodePool: pool });
    assert.equal(s.filesSeen, corpus.length + 1);
    assert.equal(s.added + s.duplicates + s.rejected.length, s.filesSeen, 'every file is accounted for');
    for (const r of s.rejected) {
      assert.ok((REJECT_CODES as readonly string[]).includes(r.code), r.code);
      assert.ok(r.message.length > 0);
    }
    assert.equal(pool.crashes, 0, 'no decoder crashed');
    assert.equal(pool.timeouts, 0, 'no decoder hung');
    assert.ok(p.images.list().some((i) => i.relPath === 'fuzz/control.jpg'));
    // Mutants both survive and fail: the corpus really exercises the decoders.
    assert.ok(s.added > 20, `${s.added} mutants imported`);
    assert.ok(s.rejected.length > 20, `${s.rejected.length} mutants rejected`);
    // What the import accepted, the training pipeline can read.
    const spec: PreprocessSpec = {
      name: 'fuzz',
      layout: 'NCHW',
      height: 32,
      width: 32,
      channels: 'RGB',
      scale: 1 / 255,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      resizeShorter: 36,
    };
    for (const img of p.images.list()) {
      const bytes = p.images.bytes(img.sha256);
      assert.ok(bytes);
      const rgb = await evalCrop(bytes, spec);
      assert.equal(rgb.data.length, 32 * 32 * 3, img.relPath);
    }
    assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    pool.close();
    p.close();
  }
});
