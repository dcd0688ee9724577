// A bad-input corpus made here (nothing vendored): every file ends as an imported image or a typed
// reason, and the import goes on.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { REJECT_CODES } from '../../src/shared/domain.ts';
import { BCCD, REPO, countImages, needsShared, tmpDir } from '../helpers/env.ts';
import { noiseJpeg, solidPng } from '../helpers/images.ts';

test('orientations 1–8, CMYK, animated GIF, 1×1, 16-bit, unicode and very long names import; SVG and BMP do not', async () => {
  const root = tmpDir('fsl-corpus-');
  const dir = path.join(root, 'mixed');
  fs.mkdirSync(dir);
  const base = await noiseJpeg(60, 30, 11);
  for (let o = 1; o <= 8; o++)
    fs.writeFileSync(
      path.join(dir, `orientation-${o}.jpg`),
      await sharp(base).withMetadata({ orientation: o }).jpeg().toBuffer(),
    );
  fs.writeFileSync(
    path.join(dir, 'cmyk.jpg'),
    await sharp(await noiseJpeg(40, 40, 12))
      .toColourspace('cmyk')
      .jpeg()
      .toBuffer(),
  );
  const frames = Buffer.concat([Buffer.alloc(16 * 16 * 4, 200), Buffer.alloc(16 * 16 * 4, 40)]);
  fs.writeFileSync(
    path.join(dir, 'animated.gif'),
    await sharp(frames, { raw: { width: 16, height: 32, channels: 4, pageHeight: 16 } as never })
      .gif()
      .toBuffer(),
  );
  fs.writeFileSync(path.join(dir, 'one-pixel.png'), await solidPng(1, 1));
  const sixteen = Buffer.alloc(10 * 10 * 2);
  for (let i = 0; i < 100; i++) sixteen.writeUInt16LE(i * 600, i * 2);
  fs.writeFileSync(
    path.join(dir, 'grey16.png'),
    await sharp(sixteen, { raw: { width: 10, height: 10, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer(),
  );
  fs.writeFileSync(path.join(dir, 'Zellkern-µ-细胞-🩸.png'), await solidPng(20, 20, [1, 2, 3]));
  fs.writeFileSync(path.join(dir, `${'long-name-'.repeat(22)}.png`), await solidPng(21, 20, [4, 5, 6]));
  fs.writeFileSync(
    path.join(dir, 'vector.svg'),
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="http://example.com/x.png"/></svg>',
  );
  fs.writeFileSync(path.join(dir, 'bitmap.bmp'), Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]));
  fs.writeFileSync(
    path.join(dir, 'binary.dat'),
    Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256)),
  );

  const p = Project.create(path.join(tmpDir(), 'corpus.fsl'));
  const s = await importFolder(p, root);
  const rejected = Object.fromEntries(s.rejected.map((r) => [path.basename(r.path), r.code]));
  assert.deepEqual(rejected, {
    'vector.svg': 'UNSUPPORTED_IMAGE',
    'bitmap.bmp': 'UNSUPPORTED_IMAGE',
    'binary.dat': 'NOT_AN_IMAGE',
  });
  for (const r of s.rejected) assert.ok((REJECT_CODES as readonly string[]).includes(r.code));
  const images = new Map(p.images.list().map((i) => [path.basename(i.relPath), i]));
  assert.equal(images.size, 14); // 8 orientations, CMYK, GIF, 1×1, 16-bit, unicode, long name
  // EXIF orientations 5–8 swap width and height.
  for (let o = 1; o <= 8; o++) {
    const img = images.get(`orientation-${o}.jpg`);
    assert.deepEqual([img?.width, img?.height], o >= 5 ? [30, 60] : [60, 30], `orientation ${o}`);
  }
  assert.deepEqual(
    [images.get('animated.gif')?.width, images.get('animated.gif')?.height],
    [16, 16],
    'first frame only',
  );
  assert.ok(images.has('Zellkern-µ-细胞-🩸.png'));
  p.close();
});

test(
  'an import killed with SIGKILL leaves a sound project, and importing again completes it without duplicates',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    const file = path.join(tmpDir(), 'killed.fsl');
    Project.create(file).close();
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'fewshot.mjs'), 'import', file, BCCD], {
      stdio: 'ignore',
    });
    const watcher = new Database(file, { readonly: true });
    const count = () => (watcher.prepare('SELECT count(*) AS n FROM images').get() as { n: number }).n;
    const deadline = Date.now() + 60_000;
    while (count() < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // Every label committed (and so reported as saved) at the moment of the kill.
    const committed = watcher
      .prepare('SELECT i.sha256 AS sha, c.name AS cls FROM images i JOIN classes c ON c.id = i.class_id')
      .all() as { sha: string; cls: string }[];
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const partial = count();
    watcher.close();
    const total = Object.values(countImages(BCCD)).reduce((a, b) => a + b, 0);
    assert.ok(partial >= 100 && partial < total, `killed partway (${partial} of ${total})`);
    const p = Project.open(file);
    assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
    const labels = new Map(p.images.list().map((i) => [i.sha256, i.className]));
    assert.ok(committed.length >= 100);
    for (const c of committed) assert.equal(labels.get(c.sha), c.cls, 'a committed label survived the kill');
    assert.equal(
      p.jobs.list().find((j) => j.kind === 'import')?.status,
      'failed',
      'the interrupted import is marked',
    );
    const s = await importFolder(p, BCCD);
    assert.equal(s.added + s.alreadyPresent, total);
    assert.equal(p.images.count(), total);
    assert.equal((p.db.prepare('SELECT count(*) AS n FROM image_blobs').get() as { n: number }).n, total);
    p.close();
  },
);

test(
  'labels the app reported as saved survive a SIGKILL of the process that saved them',
  { timeout: 120_000 },
  async () => {
    const root = tmpDir('fsl-relabel-kill-');
    fs.mkdirSync(path.join(root, 'cells'));
    for (let i = 0; i < 40; i++)
      fs.writeFileSync(path.join(root, 'cells', `${i}.png`), await solidPng(8 + i, 8, [i, 2 * i, 3 * i]));
    const file = path.join(tmpDir(), 'relabel.fsl');
    const p0 = Project.create(file);
    await importFolder(p0, root);
    p0.close();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'test', 'helpers', 'relabel-loop.ts'), file, tmpDir()],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO },
    );
    // The last label the app reported as saved for each image.
    const saved = new Map<number, string>();
    let buffer = '';
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          const m = /^saved (\d+) (\S+)$/.exec(line);
          if (m) saved.set(Number(m[1]), m[2] as string);
        }
        if (saved.size >= 40 && [...saved.values()].some((v) => v !== 'relabelled-0')) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    await new Promise((r) => (child.exitCode === null ? child.on('exit', r) : r(null)));
    const p = Project.open(file);
    assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
    const now = new Map(p.images.list().map((i) => [i.id, i.className]));
    for (const [id, label] of saved) {
      const round = (s: string | null | undefined) => Number(s?.split('-')[1] ?? -1);
      // What was reported saved is there (a later round may have landed too, never an earlier one).
      assert.ok(round(now.get(id)) >= round(label), `image ${id}: saved ${label}, found ${now.get(id)}`);
    }
    p.close();
  },
);
