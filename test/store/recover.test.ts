// A damaged project file: reported as PROJECT_CORRUPT before anything uses it, never changed, its backups
// listed and restorable as copies, and whatever can still be read copied into a new project.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { findBackups, recoverProject, restoreBackup } from '../../src/main/store/recover.ts';
import { isFewShotError } from '../../src/shared/errors.ts';
import { damagePage, damagePages, overflowPages } from '../helpers/damage.ts';
import { tmpDir } from '../helpers/env.ts';
import { noiseJpeg } from '../helpers/images.ts';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

async function labProject(dir: string): Promise<{ file: string; classes: Map<string, string> }> {
  const root = path.join(dir, 'images');
  for (const [c, cls] of ['neutrophil', 'lymphocyte', 'monocyte'].entries()) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < 30; i++)
      fs.writeFileSync(path.join(root, cls, `${i}.jpg`), await noiseJpeg(64, 64, c * 1000 + i + 1));
  }
  const file = path.join(dir, 'lab.fsl');
  const p = Project.create(file);
  await importFolder(p, root);
  const classes = new Map(p.images.list().map((i) => [i.sha256, i.className ?? '']));
  p.close();
  return { file, classes };
}

function expectCorrupt(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isFewShotError(e), String(e));
    assert.equal(e.code, 'PROJECT_CORRUPT');
    assert.match(e.message, /has not been changed|not been changed/);
    return true;
  });
}

test('a damaged project is reported, left unchanged, and what can be read is recovered into a new file', async () => {
  const dir = tmpDir('fsl-recover-');
  const { file, classes } = await labProject(dir);
  damagePages(file, 0.45, 3);
  const before = sha(file);
  expectCorrupt(() => Project.open(file, { check: true }));

  const r = recoverProject(file);
  assert.equal(sha(file), before, 'the damaged file is unchanged');
  assert.notEqual(r.file, file);
  assert.match(path.basename(r.file), /^lab\.recovered-\d{8}T\d{6}\.fsl$/);
  const images = r.tables.find((t) => t.table === 'images');
  assert.ok(images);
  const p = Project.open(r.file, { check: true });
  assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
  const recovered = p.images.list();
  assert.equal(recovered.length, images.recovered);
  assert.ok(recovered.length > 40, `${recovered.length} of 90 images recovered`);
  const lostRows = r.tables.reduce((n, t) => n + (t.lost ?? 0) + t.orphans, 0);
  assert.ok(recovered.length < 90 ? lostRows > 0 : true, 'losses are reported');
  // Every recovered image has its bytes and its original label.
  for (const img of recovered) {
    assert.equal(img.className, classes.get(img.sha256), img.relPath);
    const bytes = p.images.bytes(img.sha256);
    assert.ok(bytes);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), img.sha256);
  }
  assert.equal(p.audit.list().at(-1)?.action, 'project.recovered');
  assert.deepEqual(
    r.tables.filter((t) => t.note?.startsWith('not copied')).map((t) => t.table),
    ['feature_cache', 'checkpoints'],
  );
  p.close();
  assert.ok(fs.existsSync(file));
  assert.equal(sha(file), before);
});

test('a file whose header is destroyed lists its backups; a backup is restored as a copy', async () => {
  const dir = tmpDir('fsl-recover-header-');
  const { file } = await labProject(dir);
  const backup = path.join(dir, 'lab.fsl.20261120.backup');
  const p = Project.open(file);
  await p.backup(backup);
  p.close();
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(100, 0x00), 0, 100, 0);
  fs.closeSync(fd);
  const before = sha(file);
  const backupSha = sha(backup);

  expectCorrupt(() => Project.open(file));
  expectCorrupt(() => recoverProject(file));
  const backups = findBackups(file);
  assert.deepEqual(
    backups.map((b) => [path.basename(b.file), b.status, b.images]),
    [['lab.fsl.20261120.backup', 'ok', 90]],
  );
  const restored = restoreBackup(backup, file);
  assert.match(path.basename(restored), /^lab\.restored-/);
  const q = Project.open(restored, { check: true });
  assert.equal(q.images.count(), 90);
  q.close();
  assert.equal(sha(file), before, 'the damaged file is unchanged');
  assert.equal(sha(backup), backupSha, 'the backup is unchanged');
});

test('an image whose stored bytes are damaged is left out and counted; the rest are recovered', async () => {
  const dir = tmpDir('fsl-recover-blob-');
  const root = path.join(dir, 'images');
  for (const cls of ['a', 'b']) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < 10; i++)
      fs.writeFileSync(
        path.join(root, cls, `${i}.jpg`),
        await noiseJpeg(200, 200, cls.charCodeAt(0) * 1000 + i),
      );
  }
  const file = path.join(dir, 'big.fsl');
  const p = Project.create(file);
  await importFolder(p, root);
  p.close();
  // Large images span overflow pages: one damaged page breaks one image's bytes, not the table.
  const overflow = overflowPages(file, 'image_blobs');
  damagePage(file, overflow[Math.floor(overflow.length / 2)] as number);
  const r = recoverProject(file);
  const blobs = r.tables.find((t) => t.table === 'image_blobs');
  const images = r.tables.find((t) => t.table === 'images');
  assert.deepEqual([blobs?.recovered, blobs?.lost], [19, 1]);
  assert.deepEqual([images?.recovered, images?.orphans], [19, 1]);
  const q = Project.open(r.file, { check: true });
  assert.equal(q.images.count(), 19);
  q.close();
});
