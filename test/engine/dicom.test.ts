import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { decoder, probeImage, toRgb, validateImage } from '../../src/main/engine/image/decode.ts';
import { decodeDicom, dicomGroupKey } from '../../src/main/engine/image/dicom.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { makeDicom } from '../helpers/dicom.ts';
import { tmpDir } from '../helpers/env.ts';

test('DICOM: Bits Stored, Modality LUT, VOI window and MONOCHROME1, step by step', () => {
  // 12-bit stored in 16; slope 2, intercept −1000 → modality values 2v − 1000; window centre 0, width 401.
  const values = [0, 250, 500, 750, 4095 | 0xf000]; // the last has junk above bit 12, which Bits Stored masks
  const d = decodeDicom(
    makeDicom({ width: 5, height: 1, values, bitsStored: 12, slope: 2, intercept: -1000, window: [0, 401] }),
  );
  // modality: −1000, −500, 0, 500, 7190 → window [−200.5, 199.5]: 0, 0, mid, 255, 255
  assert.deepEqual([...d.pixels], [0, 0, Math.round(((0 - -0.5) / 400 + 0.5) * 255), 255, 255]);
  const inverted = decodeDicom(
    makeDicom({
      width: 5,
      height: 1,
      values,
      bitsStored: 12,
      slope: 2,
      intercept: -1000,
      window: [0, 401],
      photometric: 'MONOCHROME1',
    }),
  );
  assert.deepEqual(
    [...inverted.pixels],
    [...d.pixels].map((v) => 255 - v),
  );
  // No window: the full range of the image.
  const full = decodeDicom(makeDicom({ width: 3, height: 1, values: [100, 200, 300] }));
  assert.deepEqual([...full.pixels], [0, 128, 255]);
  // Signed 16-bit (Pixel Representation 1): −100 and 100.
  const signed = decodeDicom(makeDicom({ width: 2, height: 1, values: [-100 & 0xffff, 100], signed: true }));
  assert.deepEqual([...signed.pixels], [0, 255]);
});

test('DICOM goes through the same pipeline as any image; multi-frame reads the first frame', async () => {
  const bytes = makeDicom({
    width: 40,
    height: 30,
    values: Array.from({ length: 1200 }, (_, i) => i),
    frames: 3,
  });
  assert.deepEqual(await probeImage(bytes), { format: 'dicom', width: 40, height: 30, pages: 3 });
  assert.deepEqual(await validateImage(bytes), { format: 'dicom', width: 40, height: 30, pages: 3 });
  const rgb = await toRgb(decoder(bytes));
  assert.deepEqual([rgb.width, rgb.height], [40, 30]);
  assert.deepEqual([...rgb.data.subarray(0, 3)], [0, 0, 0]);
  assert.equal(decodeDicom(bytes).frames, 3);
});

test('compressed DICOM is refused naming its transfer syntax; a truncated file is damaged', async () => {
  const jpeg = makeDicom({
    width: 4,
    height: 4,
    values: Array.from({ length: 16 }, () => 1),
    transferSyntax: '1.2.840.10008.1.2.4.50',
  });
  await assert.rejects(
    validateImage(jpeg),
    (e: Error & { reject?: string }) =>
      e.reject === 'UNSUPPORTED_IMAGE' && e.message.includes('1.2.840.10008.1.2.4.50'),
  );
  const full = makeDicom({ width: 8, height: 8, values: Array.from({ length: 64 }, () => 5) });
  await assert.rejects(
    validateImage(full.subarray(0, full.length - 40)),
    (e: Error & { reject?: string }) => e.reject === 'CORRUPT_IMAGE',
  );
});

test('importing DICOM keeps one patient on one side by a hashed group key; the identifiers are stored nowhere', async () => {
  const root = tmpDir('fsl-dicom-');
  fs.mkdirSync(path.join(root, 'normal'));
  fs.mkdirSync(path.join(root, 'abnormal'));
  const mk = (seed: number, patientId: string) =>
    makeDicom({
      width: 16,
      height: 16,
      values: Array.from({ length: 256 }, (_, i) => (i * seed) % 4096),
      patientId,
      patientName: 'DOE^JANE',
    });
  fs.writeFileSync(path.join(root, 'normal', 'a.dcm'), mk(3, 'MRN123456'));
  fs.writeFileSync(path.join(root, 'normal', 'b.dcm'), mk(5, 'MRN123456'));
  fs.writeFileSync(path.join(root, 'abnormal', 'c.dcm'), mk(7, 'MRN999999'));
  const file = path.join(tmpDir(), 'dicom.fsl');
  const p = Project.create(file);
  const s = await importFolder(p, root);
  assert.equal(s.added, 3);
  const groups = new Map(p.images.list().map((i) => [i.relPath, i.groupKey]));
  assert.equal(groups.get('normal/a.dcm'), groups.get('normal/b.dcm'), 'one patient, one group');
  assert.notEqual(groups.get('normal/a.dcm'), groups.get('abnormal/c.dcm'));
  assert.match(groups.get('normal/a.dcm') ?? '', /^dicom-[0-9a-f]{16}$/);
  assert.equal(dicomGroupKey(mk(3, 'MRN123456')), groups.get('normal/a.dcm'));
  // Outside the original bytes (kept so the project can retrain), no table holds the identifiers.
  for (const t of ['images', 'audit_log', 'jobs', 'import_roots', 'classes']) {
    const rows = JSON.stringify(p.db.prepare(`SELECT * FROM ${t}`).all());
    assert.ok(!rows.includes('MRN123456') && !rows.includes('DOE^JANE'), t);
  }
  p.close();
});
