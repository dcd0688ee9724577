// Where the app and the command line used to assemble the same work twice and drifted: each case now
// goes through one use case, and each has a test that fails if the old behaviour comes back.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FewShotError } from '../../src/shared/errors.ts';
import { auditList, exportAudit } from '../../src/main/services/audit.ts';
import { classifyBatch } from '../../src/main/services/batch.ts';
import { exportBundle, importBundle } from '../../src/main/services/bundles.ts';
import { importImages, previewAugmentation } from '../../src/main/services/dataset.ts';
import { createProject } from '../../src/main/services/projects.ts';
import { train } from '../../src/main/services/training.ts';
import { DEFAULT_AUGMENT } from '../../src/shared/augment.ts';
import { damagePages } from '../helpers/damage.ts';
import { REPO, SHARED_MODELS, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';
import { twelveBitFolder } from '../helpers/images.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
function fewshot(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEWSHOT_MODELS: SHARED_MODELS },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function twelveBitProject(n = 6): Promise<{ file: string; root: string }> {
  const root = tmpDir('fsl-drift-images-');
  await twelveBitFolder(root, n);
  const file = path.join(tmpDir(), 'drift.fsl');
  const p = createProject(file);
  await importImages(p, { folder: root });
  p.close();
  return { file, root };
}

function csvProbabilities(file: string): Map<string, string[]> {
  const rows = fs.readFileSync(file, 'utf8').trim().split('\n').slice(1);
  return new Map(rows.map((l) => [l.split(',')[0] ?? '', l.split(',').slice(1, 6)]));
}

test("fewshot augment-preview follows the project's 16-bit setting, giving the app's own pixels", async () => {
  const { file } = await twelveBitProject(1);
  const { Project } = await import('../../src/main/store/project.ts');
  const p = Project.open(file);
  p.setHighBitDepth('percentile');
  const app = await previewAugmentation(p, 'stripes/0.png', DEFAULT_AUGMENT, 2, 5);
  p.setHighBitDepth('full');
  const fullRange = await previewAugmentation(p, 'stripes/0.png', DEFAULT_AUGMENT, 2, 5);
  p.setHighBitDepth('percentile');
  p.close();
  const out = tmpDir('fsl-drift-preview-');
  const r = fewshot('augment-preview', file, 'stripes/0.png', '--n', '2', '--seed', '5', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const cli = [1, 2].map((i) => fs.readFileSync(path.join(out, `variant-0${i}.png`)));
  assert.deepEqual(cli, app, 'the command line shows what the app shows');
  assert.notDeepEqual(cli, fullRange, 'and not the full-range pixels');
});

test(
  'a model trained with the percentile setting, exported and imported into another project, classifies the same 16-bit images to identical probabilities',
  { skip: needsShared, timeout: 180_000 },
  async () => {
    useModelDirs(tmpDir('fsl-drift-models-'));
    const { file, root } = await twelveBitProject();
    const { Project } = await import('../../src/main/store/project.ts');
    const a = Project.open(file);
    a.setHighBitDepth('percentile');
    const { modelId } = await train(a, { strategy: 'linear', backbone: SQUEEZENET, seed: 1 });
    const bundle = path.join(tmpDir(), 'bundle');
    await exportBundle(a, { modelId, out: bundle });
    const b = createProject(path.join(tmpDir(), 'other.fsl')); // full range, the default
    const imported = importBundle(b, bundle);
    assert.equal(b.models.get(imported.modelId)?.params.highBitDepth, 'percentile');
    const outA = path.join(tmpDir(), 'a.csv');
    const outB = path.join(tmpDir(), 'b.csv');
    await classifyBatch(a, { modelId, folder: root, out: outA, minConfidence: 0.5 });
    await classifyBatch(b, { modelId: imported.modelId, folder: root, out: outB, minConfidence: 0.5 });
    assert.deepEqual(csvProbabilities(outB), csvProbabilities(outA));
    a.close();
    b.close();
  },
);

test(
  'a fine-tuning checkpoint is only resumed under the 16-bit setting it was made with',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    useModelDirs(tmpDir('fsl-drift-models-'));
    const { file } = await twelveBitProject(12);
    const { Project } = await import('../../src/main/store/project.ts');
    const p = Project.open(file);
    const req = { strategy: 'last-stage', backbone: SQUEEZENET, seed: 4, epochs: 2 } as const;
    // Stopped during epoch 2: the checkpoint after epoch 1 is kept.
    const stop = new AbortController();
    await assert.rejects(
      train(p, req, {
        signal: stop.signal,
        progress: (e) => {
          if (e.message === 'epoch 2/2') stop.abort();
        },
      }),
      (e: unknown) => e instanceof FewShotError && e.code === 'CANCELLED',
    );
    p.setHighBitDepth('percentile');
    const other = await train(p, req);
    assert.equal(other.params.resumedFromEpoch, 0, 'not resumed from a full-range checkpoint');
    p.setHighBitDepth('full');
    const same = await train(p, req);
    assert.equal(same.params.resumedFromEpoch, 1, 'resumed under its own setting');
    p.close();
  },
);

test('the command line opens projects with the integrity check: a damaged file is PROJECT_CORRUPT', async () => {
  const file = path.join(tmpDir(), 'damaged.fsl');
  const p = createProject(file);
  for (let i = 0; i < 400; i++) p.audit.append('note', { i, pad: 'x'.repeat(200) });
  p.close();
  damagePages(file, 0.4, 4);
  const r = fewshot('trained', file);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^fewshot: PROJECT_CORRUPT: /m);
});

test('the audit trail past 100,000 entries lists the newest and exports every one', async () => {
  const p = createProject(path.join(tmpDir(), 'long.fsl'));
  p.db.transaction(() => {
    for (let i = 0; i < 100_010; i++) p.audit.append('note', { i });
  })();
  const list = auditList(p, 3);
  assert.equal(list.total, 100_011);
  assert.deepEqual(
    list.entries.map((e) => e.details.i),
    [100_009, 100_008, 100_007],
  );
  assert.equal(list.intact, true);
  const out = path.join(tmpDir(), 'audit.json');
  const r = await exportAudit(p, { out });
  assert.equal(r.entries, 100_011);
  const json = JSON.parse(fs.readFileSync(out, 'utf8')) as {
    entries: { id: number }[];
    verifiedIntact: boolean;
  };
  assert.equal(json.entries.length, 100_011);
  assert.equal(json.entries.at(-1)?.id, list.entries[0]?.id);
  assert.equal(json.verifiedIntact, true);
  p.close();
});

test(
  'an export whose parity check fails writes no bundle and no audit entry, and its job says failed',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    useModelDirs(tmpDir('fsl-drift-models-'));
    const { file } = await twelveBitProject();
    const { Project } = await import('../../src/main/store/project.ts');
    const p = Project.open(file);
    const { modelId } = await train(p, { strategy: 'prototype', backbone: SQUEEZENET, seed: 0 });
    const out = path.join(tmpDir(), 'never');
    await assert.rejects(
      exportBundle(p, { modelId, out }, {}, { parityTolerance: -1 }),
      (e: unknown) => e instanceof FewShotError && /does not reproduce/.test(e.message),
    );
    assert.equal(fs.existsSync(out), false, 'no bundle on disk');
    assert.deepEqual(
      fs.readdirSync(path.dirname(out)).filter((f) => f.startsWith('never')),
      [],
      'no temporary folder left',
    );
    assert.ok(!p.audit.list(10_000).some((e) => e.action === 'export'), 'no export audited');
    assert.equal(p.jobs.list(1)[0]?.kind, 'export');
    assert.equal(p.jobs.list(1)[0]?.status, 'failed');
    // The same export with the real tolerance succeeds, and only then is audited.
    await exportBundle(p, { modelId, out });
    assert.ok(fs.existsSync(path.join(out, 'model.onnx')));
    assert.equal(p.audit.list(10_000).filter((e) => e.action === 'export').length, 1);
    p.close();
  },
);
