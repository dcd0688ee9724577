// `fewshot embed` through the real command: a project and a folder, to .csv and .npy, the skipped images
// on stderr, and the typed refusals (an existing file without --force, an unknown extension).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import type { EmbeddingsSummary } from '../../src/shared/embeddings.ts';
import { readCsv } from '../helpers/embeddings.ts';
import { BCCD, REPO, SHARED_MODELS, SQUEEZENET, needsShared, tmpDir } from '../helpers/env.ts';
import { readNpy } from '../helpers/npy.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
let userModels = '';

function fewshot(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_USER_MODELS: userModels },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  userModels = tmpDir('fsl-cli-embed-models-');
});

test(
  'fewshot embed: a project to .csv and .npy, a folder with a damaged file, typed refusals',
  { skip: needsShared, timeout: 300_000 },
  () => {
    const dir = tmpDir('fsl-cli-embed-');
    const data = path.join(dir, 'data');
    for (const cls of ['Platelets', 'WBC']) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 3))
        fs.copyFileSync(path.join(BCCD, cls, f), path.join(data, cls, f));
    }
    const file = path.join(dir, 'lab.fsl');
    assert.equal(fewshot('project', 'create', file).code, 0);
    const imp = fewshot('import', file, data, '--groups', path.join(BCCD, 'groups.csv'));
    assert.equal(imp.code, 0, imp.stderr);

    const csv = path.join(dir, 'out', 'features.csv');
    const r = fewshot('embed', file, '--backbone', SQUEEZENET, '--out', csv, '--device', 'cpu', '--json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as EmbeddingsSummary;
    assert.deepEqual([s.format, s.rows, s.dim, s.out, s.skipped], ['csv', 6, 512, csv, []]);
    const { header, rows } = readCsv(csv);
    assert.equal(header.length, 3 + 512);
    assert.deepEqual(rows.map((row) => row[1]).sort(), [
      'Platelets',
      'Platelets',
      'Platelets',
      'WBC',
      'WBC',
      'WBC',
    ]);
    for (const row of rows) {
      assert.equal(row[0]?.split('/')[0], row[1]);
      assert.match(row[2] ?? '', /^BloodImage_\d+$/, 'the source image is the group');
    }

    // The file is there: refused without --force (and left as it was), written with it.
    const before = fs.readFileSync(csv);
    const again = fewshot('embed', file, '--backbone', SQUEEZENET, '--out', csv);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^fewshot: ALREADY_EXISTS: .*--force/m);
    assert.deepEqual(fs.readFileSync(csv), before);
    const forced = fewshot('embed', file, '--backbone', SQUEEZENET, '--out', csv, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /Wrote 6 rows × 512 features/);

    const bad = fewshot('embed', file, '--backbone', SQUEEZENET, '--out', path.join(dir, 'features.h5'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^fewshot: INVALID_INPUT: .*\.csv.*\.npy/m);
    const missing = fewshot('embed', path.join(dir, 'nothing-here'), '--backbone', SQUEEZENET, '--out', csv);
    assert.match(missing.stderr, /^fewshot: NOT_FOUND/m);

    // A folder, written relative to the working directory; a damaged file is skipped and listed on stderr.
    fs.writeFileSync(
      path.join(data, 'WBC', 'damaged.jpg'),
      fs
        .readFileSync(path.join(data, 'WBC', fs.readdirSync(path.join(data, 'WBC')).sort()[0] as string))
        .subarray(0, 300),
    );
    const npy = path.join(dir, 'folder.npy');
    const f = spawnSync(
      process.execPath,
      [BIN, 'embed', 'data', '--backbone', SQUEEZENET, '--out', 'folder.npy', '--device', 'cpu'],
      {
        encoding: 'utf8',
        cwd: dir,
        env: { ...process.env, FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_USER_MODELS: userModels },
      },
    );
    assert.equal(f.status, 0, f.stderr);
    assert.match(f.stderr, /Skipped 1 image/);
    assert.match(f.stderr, /WBC\/damaged\.jpg: CORRUPT_IMAGE/);
    const arr = readNpy(npy);
    assert.deepEqual(arr.shape, [6, 512]);
    const sidecar = readCsv(path.join(dir, 'folder.rows.csv'));
    assert.deepEqual(sidecar.header, ['index', 'path', 'label', 'group']);
    assert.deepEqual(
      sidecar.rows.map((row) => row[1]),
      rows.map((row) => row[0]),
      'the folder lists the same files in the same order',
    );
    assert.ok(
      sidecar.rows.every((row) => row[3] === ''),
      'a folder has no groups',
    );
    // The project's CSV and the folder's .npy carry the same vectors for the same files.
    for (const [i, row] of rows.entries()) {
      const a = Float32Array.from(row.slice(3), Number);
      const b = arr.data.subarray(i * 512, (i + 1) * 512);
      let worst = 0;
      for (let j = 0; j < 512; j++) worst = Math.max(worst, Math.abs((a[j] as number) - (b[j] as number)));
      assert.ok(worst <= 1e-6, `${row[0]}: ${worst}`);
    }
    const excl = fewshot(
      'embed',
      data,
      '--backbone',
      SQUEEZENET,
      '--out',
      csv,
      '--force',
      '--include-excluded',
    );
    assert.match(excl.stderr, /^fewshot: INVALID_INPUT: Only a project/m);
  },
);
