// Label suggestions for unlabelled images: a real project (BCCD crops in class folders plus files of
// known class dropped directly in the import folder), a linear head on real SqueezeNet features, and the
// suggestions ranked most uncertain first, a damaged stored image reported per image, and labelled
// images leaving the list.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { rankSuggestions } from '../../src/main/engine/suggest.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { relabelImages } from '../../src/main/services/dataset.ts';
import { suggestLabels } from '../../src/main/services/suggest.ts';
import { Project } from '../../src/main/store/project.ts';
import { isFewShotError } from '../../src/shared/errors.ts';
import type { LabelSuggestion, SuggestResult } from '../../src/shared/results.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

const CLASSES = ['Platelets', 'RBC', 'WBC'];
const PER_CLASS = 8;
const DAMAGED = 'unlabelled-7.jpg';

let project: Project | undefined;
let modelId = '';
/** The true class of each file placed unlabelled in the import folder's root. */
const truth = new Map<string, string>();
let first: SuggestResult | undefined;

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-suggest-models-'));
  const root = tmpDir('fsl-suggest-data-');
  let n = 0;
  for (const cls of CLASSES) {
    const files = fs
      .readdirSync(path.join(BCCD, cls))
      .filter((f) => f.endsWith('.jpg'))
      .sort();
    fs.mkdirSync(path.join(root, cls));
    for (const f of files.slice(0, PER_CLASS))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
    // Two more of each class in the root, under names that do not say their class.
    for (const f of files.slice(PER_CLASS, PER_CLASS + 2)) {
      const name = `unlabelled-${++n}.jpg`;
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, name));
      truth.set(name, cls);
    }
    if (cls === 'WBC')
      fs.copyFileSync(path.join(BCCD, cls, files[PER_CLASS + 2] as string), path.join(root, DAMAGED));
  }
  project = Project.create(path.join(tmpDir('fsl-suggest-'), 'lab.fsl'));
  const imported = await importFolder(project, root);
  assert.equal(imported.added, CLASSES.length * PER_CLASS + 7);
  // A stored image whose bytes no longer decode (the first 300 bytes of its JPEG): the import accepted
  // it, the project file was damaged since.
  const damaged = project.images.list().find((i) => i.relPath === DAMAGED);
  assert.ok(damaged);
  project.db
    .prepare('UPDATE image_blobs SET bytes = ? WHERE sha256 = ?')
    .run((project.images.bytes(damaged.sha256) as Buffer).subarray(0, 300), damaged.sha256);
  const backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  try {
    modelId = (await trainModel(project, backbone, { strategy: 'linear', seed: 1, estimate: false })).modelId;
  } finally {
    await backbone.release();
  }
  first = await suggestLabels(project, { modelId });
});
after(() => project?.close());

function top2(p: number[]): number {
  const s = [...p].sort((a, b) => b - a);
  return (s[0] as number) - (s[1] as number);
}

test(
  'every unlabelled image gets a suggestion with its probabilities in the model’s class order',
  { skip: needsShared },
  () => {
    const r = first as SuggestResult;
    const model = project?.models.get(modelId);
    assert.ok(model);
    assert.deepEqual(model.classes, CLASSES);
    assert.deepEqual(r.classes, model.classes);
    assert.equal(r.modelId, modelId);
    assert.equal(r.unlabelled, 7);
    assert.equal(r.suggestions.length, 6);
    assert.deepEqual(new Set(r.suggestions.map((s) => s.relPath)), new Set(truth.keys()));
    for (const s of r.suggestions) {
      assert.equal(s.probabilities.length, CLASSES.length);
      assert.ok(Math.abs(s.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5, `${s.relPath} sums to 1`);
      const best = s.probabilities.indexOf(Math.max(...s.probabilities));
      assert.equal(s.predicted, CLASSES[best]);
      assert.equal(s.confidence, s.probabilities[best]);
      assert.ok(Math.abs(s.margin - top2(s.probabilities)) < 1e-9, `${s.relPath} margin is top1 − top2`);
    }
    const right = r.suggestions.filter((s) => s.predicted === truth.get(s.relPath)).length;
    assert.ok(right >= 4, `${right} of 6 suggestions match the true class`);
    const row = project?.jobs.list().find((j) => j.kind === 'suggest');
    assert.equal(row?.status, 'done');
    // The job's row keeps counts, never the predictions themselves.
    assert.deepEqual(row?.result, { modelId, classes: CLASSES, unlabelled: 7, suggestions: 6, failed: 1 });
  },
);

test(
  'suggestions come most uncertain first, and a limit keeps the most uncertain',
  { skip: needsShared },
  async () => {
    const r = first as SuggestResult;
    for (let i = 1; i < r.suggestions.length; i++)
      assert.ok(
        (r.suggestions[i - 1] as LabelSuggestion).margin <= (r.suggestions[i] as LabelSuggestion).margin,
        'margins ascend',
      );
    const capped = await suggestLabels(project as Project, { modelId, limit: 2 });
    assert.equal(capped.unlabelled, 7);
    assert.deepEqual(capped.suggestions, r.suggestions.slice(0, 2));
  },
);

test('equal margins are ordered by file path, so a rerun lists the same order', () => {
  const s = (imageId: number, relPath: string, margin: number): LabelSuggestion => ({
    imageId,
    relPath,
    predicted: 'a',
    confidence: 0.5,
    probabilities: [0.5, 0.5],
    margin,
  });
  const ranked = rankSuggestions([
    s(1, 'c.jpg', 0.2),
    s(2, 'b.jpg', 0.1),
    s(3, 'a.jpg', 0.2),
    s(4, 'a.jpg', 0.1),
  ]);
  assert.deepEqual(
    ranked.map((x) => x.imageId),
    [4, 2, 3, 1],
  );
});

test(
  'an image that no longer decodes is listed as failed with its code; the job still succeeds',
  { skip: needsShared },
  () => {
    const r = first as SuggestResult;
    assert.equal(r.failed.length, 1);
    const f = r.failed[0];
    assert.equal(f?.relPath, DAMAGED);
    assert.equal(f?.code, 'CORRUPT_IMAGE');
    assert.ok(f?.message);
    assert.ok(!r.suggestions.some((s) => s.relPath === DAMAGED));
  },
);

test(
  'a labelled image is no longer suggested; returned to unlabelled, it is suggested again',
  { skip: needsShared },
  async () => {
    const p = project as Project;
    const r = first as SuggestResult;
    const pick = r.suggestions[0] as LabelSuggestion;
    assert.equal(relabelImages(p, [pick.imageId], truth.get(pick.relPath) as string).updated, 1);
    const next = await suggestLabels(p, { modelId });
    assert.equal(next.unlabelled, 6);
    assert.equal(next.suggestions.length, 5);
    assert.ok(!next.suggestions.some((s) => s.imageId === pick.imageId));
    assert.equal(relabelImages(p, [pick.imageId], null).updated, 1);
    const again = await suggestLabels(p, { modelId });
    assert.deepEqual(again.suggestions, r.suggestions);
  },
);

test('a cancelled run ends as cancelled', { skip: needsShared }, async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(suggestLabels(project as Project, { modelId }, { signal: ac.signal }), (e) => {
    assert.ok(isFewShotError(e));
    assert.equal(e.code, 'CANCELLED');
    return true;
  });
  assert.equal(project?.jobs.list().find((j) => j.kind === 'suggest')?.status, 'cancelled');
});

test('an unknown model is refused before any work', { skip: needsShared }, () => {
  assert.throws(
    () => suggestLabels(project as Project, { modelId: 'no-such-model' }),
    (e) => isFewShotError(e) && e.code === 'NOT_FOUND',
  );
});
