// Embeddings export of a small real project (BCCD crops with their source-image groups) to CSV and .npy:
// read back by an independent reader and by numpy, every vector equal to the app's own features of that
// image, labels and groups as the project has them, excluded and undecodable images handled, and the
// same numbers from a folder of the same files.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { formatFloat32 } from '../../src/main/engine/export/embedding-files.ts';
import { embedAll } from '../../src/main/engine/features/pipeline.ts';
import { windowed } from '../../src/main/engine/image/windowing.ts';
import { excludeImages, importImages } from '../../src/main/services/dataset.ts';
import {
  exportEmbeddings,
  exportEmbeddingsFrom,
  exportFolderEmbeddingsOf,
} from '../../src/main/services/embeddings.ts';
import { createProject } from '../../src/main/services/projects.ts';
import type { Project } from '../../src/main/store/project.ts';
import type { EmbeddingsSummary } from '../../src/shared/embeddings.ts';
import { FewShotError } from '../../src/shared/errors.ts';
import { REJECT_CODES } from '../../src/shared/domain.ts';
import { numpyLoad, numpyLoadCsvFeatures, numpySkip, readCsv } from '../helpers/embeddings.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';
import { readNpy } from '../helpers/npy.ts';

const DIM = 512;
let project: Project;
let backbone: Backbone;
let folder = '';
/** The image whose stored bytes are damaged after the import, and the one excluded. */
let damaged = '';
let excluded = '';
const out = (name: string): string => path.join(tmpDir('fsl-embed-out-'), name);
const base = { backbone: SQUEEZENET, device: 'cpu' as const, threads: 2 };

/** The first n crops of each class, with the groups file at the root (as an import reads it). */
function subset(n: number): string {
  const root = tmpDir('fsl-embed-data-');
  for (const cls of ['Platelets', 'RBC', 'WBC']) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, n))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
  }
  fs.copyFileSync(path.join(BCCD, 'groups.csv'), path.join(root, 'groups.csv'));
  return root;
}

/** The app's own features of an image's stored bytes: its pipeline, under the project's 16-bit policy. */
async function appFeatures(relPath: string): Promise<Float32Array> {
  const img = project.images.list({ includeExcluded: true }).find((i) => i.relPath === relPath);
  assert.ok(img, relPath);
  const bytes = project.images.bytes(img.sha256) as Buffer;
  for await (const batch of embedAll(backbone, [{ item: 0, load: () => windowed(bytes, 'full') }]))
    for (const r of batch) if (r.ok) return r.vector;
  throw new Error(`${relPath} did not embed`);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-embed-models-'));
  folder = subset(5);
  project = createProject(path.join(tmpDir(), 'embed.fsl'));
  const imported = await importImages(project, {
    folder,
    groupsCsv: path.join(folder, 'groups.csv'),
  });
  assert.equal(imported.added, 15);
  const images = project.images.list();
  const toExclude = images[3];
  const toDamage = images[8];
  assert.ok(toExclude && toDamage);
  excluded = toExclude.relPath;
  damaged = toDamage.relPath;
  excludeImages(project, [toExclude.id], true);
  // A stored image whose bytes no longer decode (the first 300 bytes of a JPEG).
  project.db
    .prepare('UPDATE image_blobs SET bytes = ? WHERE sha256 = ?')
    .run((project.images.bytes(toDamage.sha256) as Buffer).subarray(0, 300), toDamage.sha256);
  backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
});
after(async () => {
  await backbone?.release();
  project?.close();
});

test('float32 values print in at most 9 significant digits and read back to the same float32', () => {
  const samples = [0, -0, 1, 1.5, -2.25, 1e-7, 3.4028234663852886e38, 1.401298464324817e-45, Math.PI, -1 / 3];
  const random = Array.from({ length: 2000 }, (_, i) =>
    Math.fround(Math.sin(i * 12.9898) * 10 ** ((i % 20) - 10)),
  );
  for (const v of [...samples, ...random].map(Math.fround)) {
    const s = formatFloat32(v);
    assert.ok(s.replace(/^-|e.*$|\./g, '').replace(/^0+/, '').length <= 9, s);
    assert.ok(Object.is(Math.fround(Number(s)), v), `${v} → ${s}`);
  }
  assert.equal(formatFloat32(1.5), '1.5');
  assert.equal(formatFloat32(0), '0');
});

test(
  'a project to CSV and to .npy: rows, dims, labels, groups and the app’s own features',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const csv = out('features.csv');
    const progress: string[] = [];
    const r1 = await exportEmbeddings(
      project,
      { ...base, out: csv },
      { progress: (p) => progress.push(p.phase) },
    );
    const included = project.images.list();
    assert.equal(r1.rows, included.length - 1, 'every included image but the damaged one');
    assert.equal(r1.dim, DIM);
    assert.equal(r1.computed, included.length - 1);
    assert.deepEqual(
      r1.skipped.map((s) => s.path),
      [damaged],
    );
    assert.ok((REJECT_CODES as readonly string[]).includes(r1.skipped[0]?.code ?? ''), r1.skipped[0]?.code);
    assert.ok(progress.includes('features') && progress.includes('writing'), progress.join());

    const { header, rows } = readCsv(csv);
    assert.deepEqual(header.slice(0, 4), ['path', 'label', 'group', 'f0']);
    assert.equal(header.length, 3 + DIM);
    assert.equal(header.at(-1), `f${DIM - 1}`);
    assert.equal(rows.length, r1.rows);
    const byPath = new Map(included.map((i) => [i.relPath, i]));
    assert.ok(!rows.some((row) => row[0] === excluded || row[0] === damaged));
    let grouped = 0;
    const csvVectors = new Map<string, Float32Array>();
    for (const row of rows) {
      const img = byPath.get(row[0] as string);
      assert.ok(img, `${row[0]} is an image of the project`);
      assert.equal(row[1], img.className);
      assert.equal(row[2], img.groupKey ?? '');
      if (row[2]) grouped++;
      assert.equal(row.length, 3 + DIM);
      csvVectors.set(img.relPath, Float32Array.from(row.slice(3), Number));
    }
    assert.equal(grouped, rows.length, 'every BCCD crop has its source image as group');
    assert.deepEqual(new Set(rows.map((r) => r[1])), new Set(['Platelets', 'RBC', 'WBC']));

    // .npy: the second export reads the cache the first one filled.
    const npy = out('features.npy');
    const r2 = await exportEmbeddings(project, { ...base, out: npy });
    assert.deepEqual([r2.rows, r2.dim, r2.computed, r2.fromCache], [r1.rows, DIM, 0, included.length - 1]);
    assert.equal(r2.rowsFile, path.join(path.dirname(npy), 'features.rows.csv'));
    const arr = readNpy(npy);
    assert.deepEqual([arr.descr, arr.fortranOrder, arr.shape], ['<f4', false, [r2.rows, DIM]]);
    const sidecar = readCsv(r2.rowsFile);
    assert.deepEqual(sidecar.header, ['index', 'path', 'label', 'group']);
    assert.deepEqual(
      sidecar.rows.map((r) => r[0]),
      sidecar.rows.map((_, i) => String(i)),
    );
    assert.deepEqual(
      sidecar.rows.map((r) => r.slice(1)),
      rows.map((r) => r.slice(0, 3)),
      'the sidecar names the same rows, in the same order, as the CSV',
    );

    let worst = 0;
    for (const [i, row] of sidecar.rows.entries()) {
      const rel = row[1] as string;
      const v = arr.data.subarray(i * DIM, (i + 1) * DIM);
      // The CSV's printed values are the .npy's float32 values exactly.
      assert.deepEqual(csvVectors.get(rel), Float32Array.from(v), `${rel}: CSV and .npy agree`);
      worst = Math.max(worst, maxDiff(v, await appFeatures(rel)));
    }
    assert.ok(worst <= 1e-6, `exported vectors differ from the app's features by ${worst}`);
    assert.ok(
      arr.data.some((x) => x !== 0),
      'the features are not all zero',
    );
  },
);

const noNumpy = needsShared ? false : numpySkip();

test(
  'numpy.load reads the .npy, and numpy.loadtxt the CSV, as the same float32 values',
  { skip: needsShared || noNumpy },
  async () => {
    const npy = out('np.npy');
    const csv = out('np.csv');
    await exportEmbeddings(project, { ...base, out: npy });
    await exportEmbeddings(project, { ...base, out: csv });
    const ours = readNpy(npy);
    const np = numpyLoad(npy);
    assert.deepEqual([np.dtype, np.shape, np.c], ['<f4', ours.shape, true]);
    assert.deepEqual(np.values, Array.from(ours.data));
    assert.deepEqual(numpyLoadCsvFeatures(csv, 3), Array.from(ours.data));
  },
);

test('--include-excluded keeps excluded images with an excluded column', { skip: needsShared }, async () => {
  const csv = out('all.csv');
  const r = await exportEmbeddings(project, { ...base, out: csv, includeExcluded: true });
  const { header, rows } = readCsv(csv);
  assert.deepEqual(header.slice(0, 5), ['path', 'label', 'group', 'excluded', 'f0']);
  assert.equal(rows.length, r.rows);
  assert.equal(r.rows, project.images.list({ includeExcluded: true }).length - 1);
  assert.deepEqual(
    rows.filter((row) => row[3] === '1').map((row) => row[0]),
    [excluded],
  );
  assert.equal(rows.filter((row) => row[3] === '0').length, r.rows - 1);
  const i = rows.findIndex((row) => row[0] === excluded);
  const v = Float32Array.from((rows[i] as string[]).slice(4), Number);
  assert.ok(maxDiff(v, await appFeatures(excluded)) <= 1e-6);

  const npy = out('all.npy');
  const rn = await exportEmbeddings(project, { ...base, out: npy, includeExcluded: true });
  assert.deepEqual(readCsv(rn.rowsFile as string).header, ['index', 'path', 'label', 'group', 'excluded']);
});

test(
  'a folder: labels from its subfolders, top-level files unlabelled, a damaged file skipped',
  { skip: needsShared },
  async () => {
    const dir = tmpDir('fsl-embed-folder-');
    fs.cpSync(folder, dir, { recursive: true });
    const wbc = fs.readdirSync(path.join(dir, 'WBC')).sort();
    fs.copyFileSync(path.join(dir, 'WBC', wbc[0] as string), path.join(dir, 'loose.jpg'));
    fs.writeFileSync(
      path.join(dir, 'RBC', 'broken.jpg'),
      fs.readFileSync(path.join(dir, 'WBC', wbc[0] as string)).subarray(0, 300),
    );
    // The export is written into the folder it reads: a second run with --force does not read it back.
    const csv = path.join(dir, 'features.csv');
    const npy = path.join(dir, 'features.npy');
    const r = await exportFolderEmbeddingsOf(dir, { ...base, out: npy });
    const again = await exportFolderEmbeddingsOf(dir, { ...base, out: npy, force: true });
    assert.equal(again.rows, r.rows);
    await exportFolderEmbeddingsOf(dir, { ...base, out: csv });
    assert.equal(r.rows, 16, '15 crops and the loose file');
    assert.deepEqual(
      r.skipped.map((s) => s.path),
      ['RBC/broken.jpg'],
    );
    const { rows } = readCsv(csv);
    const loose = rows.find((row) => row[0] === 'loose.jpg');
    assert.deepEqual(loose?.slice(1, 3), ['', ''], 'a top-level file has no label and no group');
    for (const row of rows)
      if (row[0] !== 'loose.jpg') assert.equal(row[1], (row[0] as string).split('/')[0], `${row[0]} label`);
    assert.deepEqual(
      readCsv(path.join(dir, 'features.rows.csv')).rows.map((row) => row[1]),
      rows.map((row) => row[0]),
    );

    // The same files give the same vectors as the project's export (decode processes vs in-process).
    const arr = readNpy(npy);
    for (const [i, row] of rows.entries()) {
      const rel = row[0] === 'loose.jpg' ? `WBC/${wbc[0]}` : (row[0] as string);
      if (rel === damaged || !project.images.list({ includeExcluded: true }).some((x) => x.relPath === rel))
        continue;
      assert.ok(maxDiff(arr.data.subarray(i * DIM, (i + 1) * DIM), await appFeatures(rel)) <= 1e-6, rel);
    }
  },
);

test(
  'typed errors: a wrong extension, an existing file without force, a cancelled export',
  { skip: needsShared },
  async () => {
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return 'no error';
      } catch (e) {
        assert.ok(e instanceof FewShotError, String(e));
        return `${e.code}: ${e.message}`;
      }
    };
    const txt = await code(exportEmbeddings(project, { ...base, out: out('features.txt') }));
    assert.match(txt, /^INVALID_INPUT: .*\.csv.*\.npy/);
    assert.match(
      await code(exportEmbeddingsFrom(folder, { ...base, out: out('f.parquet') })),
      /^INVALID_INPUT/,
    );

    const existing = out('features.csv');
    fs.writeFileSync(existing, 'keep me');
    assert.match(await code(exportEmbeddings(project, { ...base, out: existing })), /^ALREADY_EXISTS/);
    assert.equal(fs.readFileSync(existing, 'utf8'), 'keep me', 'an existing file is left alone');
    // The .npy's sidecar counts too.
    const npy = out('features.npy');
    fs.writeFileSync(path.join(path.dirname(npy), 'features.rows.csv'), 'keep me');
    assert.match(await code(exportEmbeddings(project, { ...base, out: npy })), /^ALREADY_EXISTS/);
    assert.equal(fs.existsSync(npy), false);
    const forced: EmbeddingsSummary = await exportEmbeddings(project, {
      ...base,
      out: existing,
      force: true,
    });
    assert.equal(readCsv(existing).rows.length, forced.rows);

    // Cancelled: no file, the job's row says cancelled and the audit trail has job.cancelled.
    const cancelled = out('cancelled.npy');
    const controller = new AbortController();
    controller.abort();
    assert.match(
      await code(exportEmbeddings(project, { ...base, out: cancelled }, { signal: controller.signal })),
      /^CANCELLED/,
    );
    assert.deepEqual(fs.readdirSync(path.dirname(cancelled)), []);
    assert.equal(project.jobs.list(1)[0]?.status, 'cancelled');
    const audit = project.audit.latest(50).map((e) => e.action);
    assert.ok(audit.includes('job.cancelled'));
    assert.ok(audit.includes('embeddings'), 'a finished export is audited');
  },
);
