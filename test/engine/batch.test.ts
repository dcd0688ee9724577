import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { deserializeHead } from '../../src/main/engine/classify/serialize.ts';
import { parseCsv } from '../../src/main/engine/import/csv.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, REPO, SHARED_MODELS, countImages, needsShared, tmpDir } from '../helpers/env.ts';
import { bccdFixture, type BccdFixture } from '../helpers/bccd-project.ts';
import { CRASH_MARKER, HANG_MARKER } from '../helpers/decode-faults.ts';
import { DecodePool } from '../../src/main/engine/image/decode-pool.ts';

const FAULTY = path.join(REPO, 'test', 'helpers', 'faulty-decode-worker.ts');

let fx: BccdFixture | undefined;
let modelId = '';
let folder = '';
let files = 0;
before(async () => {
  if (needsShared) return;
  fx = await bccdFixture();
  modelId = (await trainModel(fx.project, fx.backbone, { strategy: 'linear', seed: 1, estimate: false }))
    .modelId;
  // The folder to classify: all of BCCD (1,133 crops) plus a damaged file and a text file.
  folder = tmpDir('fsl-batch-');
  fs.cpSync(BCCD, path.join(folder, 'incoming'), { recursive: true });
  fs.writeFileSync(
    path.join(folder, 'incoming', 'WBC', 'damaged.jpg'),
    fs.readFileSync(path.join(BCCD, 'WBC', 'BloodImage_00000_01.jpg')).subarray(0, 300),
  );
  fs.writeFileSync(path.join(folder, 'incoming', 'notes.txt.png'), 'not an image');
  files = Object.values(countImages(folder)).reduce((a, b) => a + b, 0);
});
after(async () => fx?.close());

function model() {
  const f = fx as BccdFixture;
  const record = f.project.models.get(modelId);
  assert.ok(record);
  return { record, head: deserializeHead(f.project.models.artefact(modelId) as Buffer) };
}

test('a trained model records everything needed to reproduce it', { skip: needsShared }, () => {
  const { record } = model();
  const f = fx as BccdFixture;
  assert.equal(record.backboneId, 'squeezenet1_1-imagenet');
  assert.equal(record.backboneSha256, f.backbone.sha256);
  assert.equal(record.strategy, 'linear');
  assert.equal(record.seed, 1);
  assert.deepEqual(record.classes, ['Platelets', 'RBC', 'WBC']);
  assert.equal(record.trainingSet.length, f.data.x.length);
  assert.ok(
    record.trainingSet.every((t) => /^[0-9a-f]{64}$/.test(t.sha256) && record.classes.includes(t.class)),
  );
  assert.ok(typeof record.params.weightDecay === 'number' && typeof record.params.temperature === 'number');
  for (const k of ['app', 'node', 'onnxruntime-node', 'sharp', 'better-sqlite3'])
    assert.ok(record.software[k], k);
  assert.match(record.artefactSha256 ?? '', /^[0-9a-f]{64}$/);
});

test(
  'classifying 1,000+ files: one CSV row per file, errors recorded, sorted folders with _uncertain',
  { skip: needsShared },
  async () => {
    const f = fx as BccdFixture;
    const { record, head } = model();
    const out = path.join(tmpDir(), 'out.csv');
    const sorted = path.join(tmpDir(), 'sorted');
    void head;
    const r = await classifyFolder(
      f.project,
      await loadModelRunner(f.project, record, f.backbone),
      record,
      folder,
      {
        outCsv: out,
        sortInto: sorted,
        minConfidence: 0.9,
      },
    );
    assert.ok(files > 1000);
    assert.equal(r.files, files + 1); // + the copied groups.csv, which is not an image
    assert.equal(r.errors, 3);
    const rows = parseCsv(fs.readFileSync(out, 'utf8'));
    const header = rows.shift() as string[];
    assert.deepEqual(header, [
      'path',
      'predicted',
      'confidence',
      'status',
      'p_Platelets',
      'p_RBC',
      'p_WBC',
      'error_code',
      'error_message',
    ]);
    assert.equal(rows.length, r.files);
    assert.equal(new Set(rows.map((x) => x[0])).size, rows.length, 'no duplicate rows');
    const byPath = new Map(rows.map((x) => [x[0], x]));
    assert.equal(byPath.get('incoming/WBC/damaged.jpg')?.[7], 'CORRUPT_IMAGE');
    assert.equal(byPath.get('incoming/notes.txt.png')?.[7], 'NOT_AN_IMAGE');
    assert.equal(byPath.get('incoming/groups.csv')?.[7], 'NOT_AN_IMAGE');
    // The classifier is right on the images it was trained on, and probabilities sum to one.
    const okRows = rows.filter((x) => x[3] !== 'error');
    const right = okRows.filter((x) => (x[0] as string).split('/')[1] === x[1]).length;
    assert.ok(right / okRows.length > 0.97);
    for (const x of okRows.slice(0, 50))
      assert.ok(Math.abs(Number(x[4]) + Number(x[5]) + Number(x[6]) - 1) < 1e-4);
    assert.equal(okRows.filter((x) => x[3] === 'uncertain').length, r.uncertain);
    assert.ok(okRows.every((x) => (x[3] === 'uncertain') === Number(x[2]) < 0.9));
    // Sorted copies: one folder per class plus _uncertain and _errors, nothing lost.
    const count = (d: string): number =>
      fs.existsSync(d)
        ? fs.readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length
        : 0;
    const total = ['Platelets', 'RBC', 'WBC', '_uncertain', '_errors'].reduce(
      (a, d) => a + count(path.join(sorted, d)),
      0,
    );
    assert.equal(total, r.files);
    assert.equal(count(path.join(sorted, '_errors')), 3);
    assert.equal(count(path.join(sorted, '_uncertain')), r.uncertain);
    // The folder holds the model's own training images: the run says how many, by content.
    const trained = new Set(record.trainingSet.map((t) => t.sha256));
    const identical = rows.filter((x) =>
      trained.has(
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(folder, x[0] as string)))
          .digest('hex'),
      ),
    ).length;
    assert.ok(identical > 1000);
    assert.equal(r.inTraining?.files, identical);
    assert.equal(r.inTraining?.examples.length, 10);
  },
);

test(
  'a batch killed with SIGKILL resumes to the same CSV, with no duplicates',
  { skip: needsShared },
  async () => {
    const f = fx as BccdFixture;
    const { record, head } = model();
    const reference = path.join(tmpDir(), 'reference.csv');
    void head;
    await classifyFolder(f.project, await loadModelRunner(f.project, record, f.backbone), record, folder, {
      outCsv: reference,
    });
    f.project.close(); // the CLI below is now the only writer

    const out = path.join(tmpDir(), 'resumed.csv');
    const args = [
      path.join(REPO, 'bin', 'fewshot.mjs'),
      'classify',
      f.file,
      '--model',
      modelId,
      folder,
      '--out',
      out,
      '--batch-size',
      '8',
    ];
    const env = { ...process.env, FEWSHOT_MODELS: SHARED_MODELS };
    const child = spawn(process.execPath, args, { env, stdio: 'ignore' });
    const watcher = new Database(f.file, { readonly: true });
    const countRows = () =>
      (
        watcher
          .prepare(
            "SELECT count(*) AS n FROM predictions p JOIN batch_runs b ON b.id = p.run_id WHERE b.params LIKE '%resumed.csv%'",
          )
          .get() as { n: number }
      ).n;
    // Wait for the run to be partway, then kill it hard.
    const deadline = Date.now() + 60_000;
    while (countRows() < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const partial = countRows();
    assert.ok(partial >= 100 && partial < files, `killed partway (${partial} of ${files})`);
    assert.equal(fs.existsSync(out), false, 'no half-written CSV');
    watcher.close();

    const resumed = spawn(process.execPath, [...args, '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    resumed.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise((r) => resumed.on('exit', r));
    assert.equal(code, 0);
    const summary = JSON.parse(stdout) as { resumed: boolean; alreadyDone: number; files: number };
    assert.equal(summary.resumed, true);
    assert.equal(summary.alreadyDone, partial);
    assert.equal(fs.readFileSync(out, 'utf8'), fs.readFileSync(reference, 'utf8'));
    const db = new Database(f.file, { readonly: true });
    const n = db
      .prepare(
        "SELECT count(*) AS n, count(DISTINCT rel_path) AS d FROM predictions p JOIN batch_runs b ON b.id = p.run_id WHERE b.params LIKE '%resumed.csv%'",
      )
      .get() as { n: number; d: number };
    assert.deepEqual([n.n, n.d], [summary.files, summary.files]);
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  },
);

/** The fixture's project opened again (the kill test handed it to a command-line run) and its model. */
function reopened() {
  const f = fx as BccdFixture;
  const project = Project.open(f.file);
  const record = project.models.get(modelId);
  assert.ok(record);
  return { project, record, backbone: f.backbone };
}

/** Copies the first `n` BCCD crops of `cls` into `dir/name`. */
function copyCrops(dir: string, name: string, cls: string, n: number): string[] {
  fs.mkdirSync(path.join(dir, name));
  const files = fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, n);
  for (const file of files) fs.copyFileSync(path.join(BCCD, cls, file), path.join(dir, name, file));
  return files;
}

test(
  'in a batch, a file that crashes or hangs the decoder is an error row; every other file is classified',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    const { project, record, backbone } = reopened();
    const dir = tmpDir('fsl-batch-faulty-');
    const good = copyCrops(dir, 'WBC', 'WBC', 10);
    const jpeg = fs.readFileSync(path.join(BCCD, 'WBC', good[0] as string));
    // Valid JPEGs with a marker after the end: only the fault-injecting worker reacts to them.
    fs.writeFileSync(path.join(dir, 'WBC', 'crashes.jpg'), Buffer.concat([jpeg, Buffer.from(CRASH_MARKER)]));
    fs.writeFileSync(path.join(dir, 'WBC', 'hangs.jpg'), Buffer.concat([jpeg, Buffer.from(HANG_MARKER)]));
    const pool = new DecodePool({ workerScript: FAULTY, timeoutMs: 3000 });
    const out = path.join(tmpDir(), 'faulty.csv');
    try {
      const r = await classifyFolder(project, await loadModelRunner(project, record, backbone), record, dir, {
        outCsv: out,
        decodePool: pool,
      });
      assert.equal(r.files, 12);
      assert.equal(r.errors, 2);
      const rows = parseCsv(fs.readFileSync(out, 'utf8')).slice(1);
      const codes = new Map(rows.map((x) => [x[0], x[3] === 'error' ? x.at(-2) : x[1]]));
      assert.equal(codes.get('WBC/crashes.jpg'), 'DECODER_CRASHED');
      assert.equal(codes.get('WBC/hangs.jpg'), 'DECODE_TIMEOUT');
      for (const name of good) assert.equal(codes.get(`WBC/${name}`), 'WBC', name);
    } finally {
      pool.close();
      project.close();
    }
  },
);

test(
  'a folder that cannot be listed during a batch is an error row, not silently skipped',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    const { project, record, backbone } = reopened();
    const dir = tmpDir('fsl-batch-vanish-');
    for (const name of ['A', 'B']) copyCrops(dir, name, 'RBC', 40);
    const out = path.join(tmpDir(), 'vanish.csv');
    let removed = false;
    try {
      // Folder B is listed only after A's files are done; it goes away while A is being classified.
      const r = await classifyFolder(project, await loadModelRunner(project, record, backbone), record, dir, {
        outCsv: out,
        onProgress: () => {
          if (!removed) fs.rmSync(path.join(dir, 'B'), { recursive: true });
          removed = true;
        },
      });
      assert.ok(removed);
      assert.equal(r.files, 41);
      const rows = parseCsv(fs.readFileSync(out, 'utf8')).slice(1);
      const b = rows.find((x) => x[0] === 'B');
      assert.deepEqual(
        [b?.[3], b?.at(-2), b?.at(-1)],
        ['error', 'UNREADABLE', 'The folder could not be listed (it disappeared during the scan).'],
      );
    } finally {
      project.close();
    }
  },
);
