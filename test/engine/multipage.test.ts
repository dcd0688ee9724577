// Multi-page TIFF and multi-frame DICOM: the first page by default (and the import says so), or every page
// as its own image by an explicit option, the pages of one file kept in one group.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { decoder, toRgb } from '../../src/main/engine/image/decode.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { makeDicom } from '../helpers/dicom.ts';
import { tmpDir } from '../helpers/env.ts';
import { solidPng } from '../helpers/images.ts';

const GREYS = [30, 140, 250];

async function stackFolder(): Promise<string> {
  const root = tmpDir('fsl-pages-');
  const dir = path.join(root, 'cells');
  fs.mkdirSync(dir);
  // Three pages of different sizes and greys.
  const pages = await Promise.all(
    GREYS.map((g, k) =>
      sharp({ create: { width: 20 + k, height: 12, channels: 3, background: { r: g, g, b: g } } })
        .raw()
        .toBuffer(),
    ),
  );
  const w = 22;
  const padded = pages.map((p, k) => {
    const out = Buffer.alloc(w * 12 * 3, GREYS[k]);
    for (let y = 0; y < 12; y++) p.copy(out, y * w * 3, y * (20 + k) * 3, (y + 1) * (20 + k) * 3);
    return out;
  });
  fs.writeFileSync(
    path.join(dir, 'stack.tif'),
    await sharp(Buffer.concat(padded), {
      raw: { width: w, height: 36, channels: 3, pageHeight: 12 } as never,
    })
      .tiff()
      .toBuffer(),
  );
  fs.writeFileSync(
    path.join(dir, 'cine.dcm'),
    makeDicom({
      width: 4,
      height: 4,
      values: Array.from({ length: 16 }, () => 100),
      frames: 3,
      frameOffset: 100,
      window: [200, 256],
      patientId: 'PAGE-TEST-PATIENT',
    }),
  );
  fs.writeFileSync(path.join(dir, 'single.png'), await solidPng(9, 9));
  return root;
}

async function mean(p: Project, sha256: string): Promise<number> {
  const bytes = p.images.bytes(sha256);
  assert.ok(bytes);
  const { data } = await toRgb(decoder(bytes));
  return data.reduce((a, b) => a + b, 0) / data.length;
}

test('by default a multi-page file gives its first page, and the import counts such files', async () => {
  const root = await stackFolder();
  const p = Project.create(path.join(tmpDir(), 'first.fsl'));
  const s = await importFolder(p, root);
  assert.equal(s.added, 3);
  assert.equal(s.multiPage, 2);
  const tif = p.images.list().find((i) => i.relPath === 'cells/stack.tif');
  assert.ok(tif);
  assert.ok(Math.abs((await mean(p, tif.sha256)) - GREYS[0]!) < 1, 'first page');
  p.close();
});

test('with --frames each, every page and frame is an image, grouped by file; asking again adds nothing', async () => {
  const root = await stackFolder();
  const p = Project.create(path.join(tmpDir(), 'each.fsl'));
  // First pages only, then every page: the earlier first page becomes page 1, the others are added.
  await importFolder(p, root);
  const s = await importFolder(p, root, { frames: 'each' });
  assert.equal(s.added, 4);
  assert.equal(s.alreadyPresent, 3);
  const images = new Map(p.images.list().map((i) => [i.relPath, i]));
  assert.deepEqual([...images.keys()].sort(), [
    'cells/cine.dcm#page=1',
    'cells/cine.dcm#page=2',
    'cells/cine.dcm#page=3',
    'cells/single.png',
    'cells/stack.tif#page=1',
    'cells/stack.tif#page=2',
    'cells/stack.tif#page=3',
  ]);
  for (let k = 0; k < 3; k++) {
    const page = images.get(`cells/stack.tif#page=${k + 1}`);
    assert.ok(page);
    assert.ok(Math.abs((await mean(p, page.sha256)) - GREYS[k]!) < 1, `page ${k + 1}`);
    assert.equal(page.className, 'cells');
  }
  // DICOM frames 100, 200, 300 through the window (centre 200, width 256): dark, middle, bright.
  const frames = await Promise.all(
    [1, 2, 3].map((k) => mean(p, images.get(`cells/cine.dcm#page=${k}`)?.sha256 ?? '')),
  );
  assert.ok(frames[0]! < frames[1]! && frames[1]! < frames[2]!, frames.join(' < '));
  const groups = (name: string) =>
    new Set([1, 2, 3].map((k) => images.get(`cells/${name}#page=${k}`)?.groupKey));
  assert.equal(groups('stack.tif').size, 1, 'pages of one TIFF share a group');
  assert.equal(groups('cine.dcm').size, 1, 'frames of one DICOM share the patient group');
  assert.match([...groups('cine.dcm')][0] ?? '', /^dicom-/);
  assert.notDeepEqual(groups('stack.tif'), groups('cine.dcm'));

  const again = await importFolder(p, root, { frames: 'each' });
  assert.equal(again.added, 0);
  assert.equal(again.duplicates, 0, 'a file split into pages is not its own duplicate');
  assert.equal(again.alreadyPresent, 3, 'three files, all present');
  assert.equal(p.images.count(), 7);
  p.close();
});
