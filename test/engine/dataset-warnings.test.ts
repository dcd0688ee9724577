import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { loadDataset } from '../../src/main/engine/classify/dataset.ts';
import { datasetWarnings } from '../../src/main/engine/dataset-warnings.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, needsShared, SQUEEZENET, tmpDir, useModelDirs } from '../helpers/env.ts';

let backbone: Backbone | undefined;
before(async () => {
  useModelDirs(tmpDir('fsl-user-models-'));
  if (!needsShared) backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
});
after(async () => backbone?.release());

async function folder(withCopies: boolean): Promise<string> {
  const root = tmpDir('fsl-dups-');
  const rows = ['file,group'];
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 8)) {
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
      rows.push(`${cls}/${f},${f.slice(0, 16)}`);
    }
  }
  if (withCopies) {
    const src = path.join(BCCD, 'WBC', fs.readdirSync(path.join(BCCD, 'WBC')).sort()[0] as string);
    const meta = await sharp(src).metadata();
    // A re-encoded, slightly smaller copy filed under another class, and one in another group.
    const copy = await sharp(src)
      .resize(Math.round(meta.width * 0.9))
      .jpeg({ quality: 70 })
      .toBuffer();
    fs.writeFileSync(path.join(root, 'RBC', 'copy-of-wbc.jpg'), copy);
    fs.writeFileSync(
      path.join(root, 'WBC', 'second-scan.jpg'),
      await sharp(src).jpeg({ quality: 85 }).toBuffer(),
    );
    rows.push('RBC/copy-of-wbc.jpg,other-slide', 'WBC/second-scan.jpg,other-slide');
  }
  fs.writeFileSync(path.join(root, 'groups.csv'), `${rows.join('\n')}\n`);
  return root;
}

test(
  'near-duplicates across labels and across groups are found; distinct cells are not',
  { skip: needsShared },
  async () => {
    const p = Project.create(path.join(tmpDir(), 'd.fsl'));
    const root = await folder(true);
    await importFolder(p, root, { groupsCsv: path.join(root, 'groups.csv') });
    const w = await datasetWarnings(p, await loadDataset(p, backbone as Backbone));
    const kinds = w.map((x) => x.kind);
    assert.ok(kinds.includes('label-conflict'), JSON.stringify(w));
    assert.ok(kinds.includes('near-duplicate'), JSON.stringify(w));
    const conflict = w.find((x) => x.kind === 'label-conflict');
    // The RBC copy is near-identical to the WBC original and to its second scan: two conflicting pairs.
    assert.match(conflict?.message ?? '', /^2 pair/);
    assert.equal(conflict?.imageIds.length, 3);
    p.close();

    const q = Project.create(path.join(tmpDir(), 'e.fsl'));
    const clean = await folder(false);
    await importFolder(q, clean, { groupsCsv: path.join(clean, 'groups.csv') });
    const none = await datasetWarnings(q, await loadDataset(q, backbone as Backbone));
    assert.deepEqual(
      none.map((x) => x.kind),
      [],
      JSON.stringify(none),
    );
    q.close();
  },
);

test('missing groups and tiny classes are warned about', { skip: needsShared }, async () => {
  const p = Project.create(path.join(tmpDir(), 'f.fsl'));
  const root = tmpDir('fsl-small-');
  for (const [cls, n] of [
    ['WBC', 6],
    ['RBC', 3],
  ] as const) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, n))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  await importFolder(p, root);
  const w = await datasetWarnings(p, await loadDataset(p, backbone as Backbone));
  assert.deepEqual(w.map((x) => x.kind).sort(), ['no-groups', 'small-class']);
  assert.match(w.find((x) => x.kind === 'small-class')?.message ?? '', /RBC \(3\)/);
  p.close();
});
