// The one atomic-write helper: a file appears whole or not at all; a failed write leaves the old file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  AtomicFile,
  isTemporaryOf,
  writeChunksAtomic,
  writeFileAtomic,
} from '../../src/main/engine/atomic-file.ts';
import { tmpDir } from '../helpers/env.ts';

test('a write replaces the file whole and leaves no temporary file; it creates the folder', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'sub', 'out.txt');
  assert.deepEqual(writeFileAtomic(file, 'one'), { out: file, bytes: 3 });
  writeFileAtomic(file, Buffer.from('two!'));
  assert.equal(fs.readFileSync(file, 'utf8'), 'two!');
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['out.txt']);
});

test('a write that fails part-way leaves the old file as it was and nothing beside it', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'report.csv');
  fs.writeFileSync(file, 'old');
  function* chunks(): Generator<string> {
    yield 'a,b\n';
    yield 'x'.repeat(100_000);
    throw new Error('the source failed');
  }
  assert.throws(() => writeChunksAtomic(file, chunks()), /the source failed/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['report.csv']);
});

test('until commit only the temporary file exists; abort removes it', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'big.bin');
  const f = AtomicFile.create(file);
  f.write('partial');
  const names = fs.readdirSync(dir);
  assert.equal(names.length, 1);
  assert.ok(isTemporaryOf(path.join(dir, names[0] as string), file));
  assert.equal(fs.existsSync(file), false);
  f.abort();
  assert.deepEqual(fs.readdirSync(dir), []);
  const g = AtomicFile.create(file);
  g.write('whole');
  g.commit();
  assert.equal(fs.readFileSync(file, 'utf8'), 'whole');
  assert.throws(() => g.write('more'));
});
