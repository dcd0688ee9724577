import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { embedAll } from '../../src/main/engine/features/pipeline.ts';
import { computeFeatures } from '../../src/main/engine/features/project-features.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, needsShared, SQUEEZENET, tmpDir, useModelDirs } from '../helpers/env.ts';
import { noiseJpeg } from '../helpers/images.ts';

let backbone: Backbone | undefined;
before(async () => {
  useModelDirs(tmpDir('fsl-user-models-'));
  if (!needsShared) backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
});
after(async () => backbone?.release());

/** A small copy of BCCD: the first n images of each class. */
function subset(n: number): string {
  const root = tmpDir('fsl-sub-');
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, n))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  return root;
}

test(
  'features are computed once, cached in the project, and read back identical',
  { skip: needsShared },
  async () => {
    const b = backbone as Backbone;
    const file = path.join(tmpDir(), 'f.fsl');
    const p = Project.create(file);
    await importFolder(p, subset(12));
    const progress: number[] = [];
    const first = await computeFeatures(p, b, { batchSize: 8, onProgress: (e) => progress.push(e.done) });
    assert.deepEqual([first.images, first.computed, first.fromCache, first.failed], [36, 36, 0, 0]);
    assert.equal(progress.at(-1), 36);
    assert.equal(p.features.count(SQUEEZENET), 36);
    const img = p.images.list()[5];
    const cached = p.features.get(img?.sha256 as string, SQUEEZENET);
    assert.equal(cached?.length, 512);
    p.close();

    // A reopened project reads every vector from the cache, and they equal a fresh computation.
    const q = Project.open(file);
    const second = await computeFeatures(q, b);
    assert.deepEqual([second.computed, second.fromCache], [0, 36]);
    const fresh = embedAll(b, [{ item: 0, load: () => q.images.bytes(img?.sha256 as string) as Buffer }]);
    for await (const batch of fresh) {
      const r = batch[0];
      assert.ok(r?.ok);
      assert.deepEqual(r.vector, q.features.get(img?.sha256 as string, SQUEEZENET));
    }
    q.close();
  },
);

test(
  'batched features equal one-at-a-time features (batching does not change results)',
  { skip: needsShared },
  async () => {
    const b = backbone as Backbone;
    const files = fs
      .readdirSync(path.join(BCCD, 'WBC'))
      .sort()
      .slice(0, 5)
      .map((f) => path.join(BCCD, 'WBC', f));
    const items = files.map((f, i) => ({ item: i, load: () => fs.readFileSync(f) }));
    const batched = new Map<number, Float32Array>();
    for await (const batch of embedAll(b, items, { batchSize: 4 }))
      for (const r of batch) if (r.ok) batched.set(r.item, r.vector);
    for await (const batch of embedAll(b, items, { batchSize: 1 }))
      for (const r of batch) {
        assert.ok(r.ok);
        const other = batched.get(r.item) as Float32Array;
        for (let k = 0; k < 512; k++)
          assert.ok(Math.abs((other[k] as number) - (r.vector[k] as number)) < 1e-4);
      }
  },
);

test(
  'a file that cannot be decoded fails alone; the rest of its batch is embedded',
  { skip: needsShared },
  async () => {
    const b = backbone as Backbone;
    const good = await noiseJpeg(64, 64);
    const items = [
      { item: 'good-1', load: () => good },
      { item: 'broken', load: () => good.subarray(0, 200) },
      { item: 'missing', load: (): Buffer => fs.readFileSync('/nonexistent/file.jpg') },
      { item: 'good-2', load: () => good },
    ];
    const results = [];
    for await (const batch of embedAll(b, items, { batchSize: 4 })) results.push(...batch);
    const byItem = new Map(results.map((r) => [r.item, r]));
    assert.equal(results.length, 4);
    assert.ok(byItem.get('good-1')?.ok && byItem.get('good-2')?.ok);
    const broken = byItem.get('broken');
    assert.ok(broken && !broken.ok && broken.error.code === 'CORRUPT_IMAGE');
    const missing = byItem.get('missing');
    assert.ok(missing && !missing.ok);
  },
);
