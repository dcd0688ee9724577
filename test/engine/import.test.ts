import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { parseCsv } from '../../src/main/engine/import/csv.ts';
import { Project } from '../../src/main/store/project.ts';
import type { ImportProgress, ImportSummary } from '../../src/shared/domain.ts';
import { toErrorData } from '../../src/shared/errors.ts';
import { BCCD, OMNIGLOT, REPO, countImages, needsShared, tmpDir, unprivileged } from '../helpers/env.ts';
import { declaredPng, noiseJpeg, solidPng } from '../helpers/images.ts';

test(
  'importing BCCD: counts per class match the folders, groups are read, a re-import adds nothing',
  { skip: needsShared },
  async () => {
    const p = Project.create(path.join(tmpDir(), 'bccd.fsl'));
    const progress: ImportProgress[] = [];
    const s = await importFolder(p, BCCD, {
      groupsCsv: path.join(BCCD, 'groups.csv'),
      onProgress: (e) => progress.push(e),
    });
    const expected = countImages(BCCD);
    const total = Object.values(expected).reduce((a, b) => a + b, 0);
    assert.deepEqual(s.perClass, expected);
    assert.equal(s.added, total);
    assert.deepEqual(s.rejected, []);
    assert.equal(s.groupsAssigned, total);
    assert.equal(progress.at(-1)?.phase, 'done');
    assert.ok(progress.some((e) => e.phase === 'importing'));

    // Every image carries the source image named for it in groups.csv.
    const rows = parseCsv(fs.readFileSync(path.join(BCCD, 'groups.csv'), 'utf8')).slice(1);
    const want = new Map(rows.map((r) => [r[0], r[2]]));
    const images = p.images.list();
    assert.equal(images.length, total);
    for (const img of images) {
      assert.equal(img.groupKey, want.get(img.relPath), img.relPath);
      assert.equal(img.className, img.relPath.split('/')[0]);
      assert.ok(img.width > 0 && img.height > 0 && img.format === 'jpeg');
    }
    const stored = p.images.bytes(images[0]?.sha256 as string);
    assert.deepEqual(
      stored,
      fs.readFileSync(path.join(BCCD, images[0]?.relPath as string)),
      'original bytes kept in the project',
    );

    const again = await importFolder(p, BCCD, { groupsCsv: path.join(BCCD, 'groups.csv') });
    assert.equal(again.added, 0);
    assert.equal(again.alreadyPresent, total);
    assert.equal(p.images.count(), total);
    assert.deepEqual(
      p.audit
        .list()
        .filter((e) => e.action === 'import')
        .map((e) => e.details.added),
      [total, 0],
    );
    assert.equal(p.audit.verify(), null);
    p.close();
  },
);

test(
  'importing Omniglot: the first folder level is the class, nested folders are walked',
  { skip: needsShared },
  async () => {
    const root = path.join(OMNIGLOT, 'images_background_small1');
    const p = Project.create(path.join(tmpDir(), 'omni.fsl'));
    const s = await importFolder(p, root);
    assert.deepEqual(s.perClass, countImages(root));
    assert.deepEqual(s.rejected, []);
    const img = p.images.list()[0];
    assert.equal(img?.format, 'png');
    assert.deepEqual([img?.width, img?.height], [105, 105]);
    p.close();
  },
);

test('a folder with broken files imports everything else and reports each file with its reason', async () => {
  const root = tmpDir('fsl-bad-');
  for (const c of ['cats', 'dogs']) fs.mkdirSync(path.join(root, c));
  const good = await noiseJpeg(80, 60, 1);
  fs.writeFileSync(path.join(root, 'cats', 'a.jpg'), good);
  fs.writeFileSync(path.join(root, 'cats', 'b.png'), await solidPng(30, 40));
  fs.mkdirSync(path.join(root, 'dogs', 'nested', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(root, 'dogs', 'nested', 'deeper', 'c.jpg'), await noiseJpeg(50, 50, 2));
  fs.writeFileSync(path.join(root, 'dogs', 'copy-of-a.jpg'), good);
  fs.writeFileSync(
    path.join(root, 'dogs', 'truncated.jpg'),
    (await noiseJpeg(120, 120, 3)).subarray(0, 1500),
  );
  fs.writeFileSync(path.join(root, 'dogs', 'empty.jpg'), Buffer.alloc(0));
  fs.writeFileSync(path.join(root, 'dogs', 'notes.png'), 'this is a text file with a .png name\n');
  fs.writeFileSync(path.join(root, 'dogs', 'huge.png'), await solidPng(1200, 1000));
  fs.writeFileSync(path.join(root, 'dogs', 'bomb.png'), declaredPng(100_000, 100_000));
  fs.symlinkSync(path.join(root, 'no-such-target.jpg'), path.join(root, 'dogs', 'dangling.jpg'));
  fs.writeFileSync(
    path.join(root, 'groups.csv'),
    'file,group\ncats/a.jpg,patient-1\n"dogs/nested/deeper/c.jpg",patient-2\nmissing.jpg,patient-3\n',
  );

  const p = Project.create(path.join(tmpDir(), 'bad.fsl'));
  const s = await importFolder(p, root, {
    groupsCsv: path.join(root, 'groups.csv'),
    limits: { maxPixels: 1_000_000, maxBytes: 50_000_000 },
  });
  assert.equal(s.added, 3);
  assert.equal(s.duplicates, 1);
  assert.deepEqual(s.perClass, { cats: 2, dogs: 1 });
  const reasons = Object.fromEntries(s.rejected.map((r) => [r.path, r.code]));
  assert.deepEqual(reasons, {
    'dogs/truncated.jpg': 'CORRUPT_IMAGE',
    'dogs/empty.jpg': 'EMPTY_FILE',
    'dogs/notes.png': 'NOT_AN_IMAGE',
    'dogs/huge.png': 'IMAGE_TOO_LARGE',
    'dogs/bomb.png': 'IMAGE_TOO_LARGE',
    'dogs/dangling.jpg': 'UNREADABLE',
  });
  for (const r of s.rejected) assert.ok(r.message.length > 10, `a readable message for ${r.path}`);
  assert.equal(s.groupsAssigned, 2);
  assert.equal(s.groupsUnmatched, 1);
  const rows = p.db.prepare('SELECT rel_path, code FROM import_rejections ORDER BY rel_path').all();
  assert.equal(rows.length, 6, 'rejections are stored for the UI');
  const byPath = new Map(p.images.list().map((i) => [i.relPath, i]));
  assert.equal(byPath.get('dogs/nested/deeper/c.jpg')?.className, 'dogs');
  assert.equal(byPath.get('cats/a.jpg')?.groupKey, 'patient-1');
  p.close();
});

test(
  'an unreadable (permission-denied) file or folder is reported as UNREADABLE and the import goes on',
  { skip: unprivileged() === null ? 'running as root without setpriv' : false },
  async () => {
    const prefix = unprivileged() ?? [];
    const root = tmpDir('fsl-perm-');
    fs.mkdirSync(path.join(root, 'a'));
    fs.writeFileSync(path.join(root, 'a', 'ok.png'), await solidPng(10, 10));
    fs.writeFileSync(path.join(root, 'a', 'locked.png'), await solidPng(12, 12));
    fs.chmodSync(path.join(root, 'a', 'locked.png'), 0);
    fs.mkdirSync(path.join(root, 'b'));
    fs.writeFileSync(path.join(root, 'b', 'hidden.png'), await solidPng(13, 13));
    fs.chmodSync(path.join(root, 'b'), 0);
    const work = tmpDir('fsl-perm-project-');
    fs.chmodSync(work, 0o777); // the unprivileged import writes the project (and its WAL) here
    fs.chmodSync(root, 0o755);
    const file = path.join(work, 'perm.fsl');
    const fewshot = (...a: string[]) => {
      const argv = [...prefix, process.execPath, path.join(REPO, 'bin', 'fewshot.mjs'), ...a];
      return spawnSync(argv[0] as string, argv.slice(1), {
        encoding: 'utf8',
        env: { ...process.env, HOME: work },
      });
    };
    assert.equal(fewshot('project', 'create', file).status, 0);
    const r = fewshot('import', file, root, '--json');
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as ImportSummary;
    assert.equal(s.added, 1);
    fs.chmodSync(path.join(root, 'b'), 0o755);
    // The unlistable folder is reported too: its files were not silently skipped.
    assert.deepEqual(
      s.rejected.map((x) => [x.path, x.code]),
      [
        ['a/locked.png', 'UNREADABLE'],
        ['b', 'UNREADABLE'],
      ],
    );
    assert.match(s.rejected[0]?.message ?? '', /permission denied/);
    assert.equal(s.rejected[1]?.message, 'The folder could not be listed (permission denied).');
  },
);

test('a file deleted while the folder is being imported is rejected as UNREADABLE; the rest import', async () => {
  const root = tmpDir('fsl-vanish-');
  fs.mkdirSync(path.join(root, 'cells'));
  for (let i = 0; i < 10; i++)
    fs.writeFileSync(path.join(root, 'cells', `c${i}.png`), await solidPng(10 + i, 10, [i * 20, 5, 5]));
  const p = Project.create(path.join(tmpDir(), 'vanish.fsl'));
  let deleted = false;
  // The folder was listed before the first chunk was committed; the last file goes after that.
  const s = await importFolder(p, root, {
    chunkSize: 2,
    onProgress: (e) => {
      if (e.phase === 'importing' && !deleted) {
        fs.rmSync(path.join(root, 'cells', 'c9.png'));
        deleted = true;
      }
    },
  });
  assert.ok(deleted);
  assert.equal(s.filesSeen, 10);
  assert.equal(s.added, 9);
  assert.deepEqual(
    s.rejected.map((r) => [r.path, r.code, r.message]),
    [['cells/c9.png', 'UNREADABLE', 'Cannot read the file (the file disappeared during the import).']],
  );
  p.close();
});

test('a missing folder and a bad groups file are typed errors', async () => {
  const p = Project.create(path.join(tmpDir(), 'e.fsl'));
  await assert.rejects(importFolder(p, path.join(tmpDir(), 'nope')), { code: 'NOT_FOUND' });
  const root = tmpDir('fsl-g-');
  fs.writeFileSync(path.join(root, 'g.csv'), 'name,label\nx,y\n');
  await assert.rejects(importFolder(p, root, { groupsCsv: path.join(root, 'g.csv') }), {
    code: 'INVALID_INPUT',
  });
  p.close();
});

test('a full disk stops the import with DISK_FULL; what was committed stays, and importing again completes it', async () => {
  const root = tmpDir('fsl-full-');
  fs.mkdirSync(path.join(root, 'cells'));
  for (let i = 0; i < 30; i++)
    fs.writeFileSync(path.join(root, 'cells', `${i}.jpg`), await noiseJpeg(64, 64, i + 1));
  const p = Project.create(path.join(tmpDir(), 'full.fsl'));
  // SQLite's own ceiling on the file's size: the same SQLITE_FULL a full disk gives.
  const pages = p.db.pragma('page_count', { simple: true }) as number;
  p.db.pragma(`max_page_count = ${pages + 8}`);
  let error: unknown = null;
  await importFolder(p, root, { chunkSize: 4 }).catch((e: unknown) => (error = e));
  assert.equal(toErrorData(error).code, 'DISK_FULL');
  const kept = p.images.count();
  assert.ok(kept > 0 && kept < 30, `${kept} images committed before the disk filled`);
  assert.equal(p.jobs.list().find((j) => j.kind === 'import')?.error?.code, 'DISK_FULL');
  assert.equal(p.db.pragma('integrity_check', { simple: true }), 'ok');
  p.db.pragma('max_page_count = 1073741823');
  const s = await importFolder(p, root);
  assert.deepEqual([s.added, s.alreadyPresent, p.images.count()], [30 - kept, kept, 30]);
  p.close();
});
