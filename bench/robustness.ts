// Prints how the app stands up to hostile files and to being killed: files tried, imported, rejected by
// reason, decoder crashes and time-outs (each fails one file), app crashes (must be 0), and kill -9 runs
// during import, batch classification and training with the rows lost (must be 0).
//
//   npm run bench:robustness [-- --mutants 600 --kills 3 --seed 1]

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { DecodePool } from '../src/main/engine/image/decode-pool.ts';
import { importFolder } from '../src/main/engine/import/import-folder.ts';
import { Rng } from '../src/main/engine/random.ts';
import { Project } from '../src/main/store/project.ts';
import { mutantCorpus, writeHostileCorpus } from '../test/helpers/corpus.ts';
import { BCCD, REPO, SHARED } from './lib.ts';

const { values } = parseArgs({
  options: {
    mutants: { type: 'string', default: '600' },
    kills: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
  },
});
const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
const ENV = { ...process.env };
const rng = new Rng(Number(values.seed));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-robust-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fewshot(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: ENV });
  if (r.status !== 0) throw new Error(`fewshot ${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

function sound(file: string): boolean {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('integrity_check', { simple: true }) === 'ok';
  } finally {
    db.close();
  }
}

/** Runs `args` and SIGKILLs it once `ready(db)` holds on a read-only view of the project. */
async function killWhen(file: string, args: string[], ready: (db: Database.Database) => boolean) {
  const child = spawn(process.execPath, [BIN, ...args], { env: ENV, stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  await sleep(200);
  const db = new Database(file, { readonly: true });
  const deadline = Date.now() + 300_000;
  let hit = false;
  while (Date.now() < deadline && child.exitCode === null) {
    if (ready(db)) {
      hit = true;
      break;
    }
    await sleep(5);
  }
  child.kill('SIGKILL');
  await exited;
  return { db, hit };
}

interface KillRun {
  what: string;
  at: string;
  sound: boolean;
  lost: number;
  duplicates: number;
  note: string;
}
const kills: KillRun[] = [];

async function hostileImport(): Promise<number> {
  const root = path.join(work, 'hostile');
  const named = await writeHostileCorpus(path.join(root, 'named'));
  const mutants = await mutantCorpus(Number(values.mutants), Number(values.seed));
  fs.mkdirSync(path.join(root, 'fuzz'), { recursive: true });
  for (const [name, bytes] of mutants) fs.writeFileSync(path.join(root, 'fuzz', name), bytes);
  const p = Project.create(path.join(work, 'hostile.fsl'));
  const pool = new DecodePool({ timeoutMs: 30_000 });
  let appCrashes = 0;
  const started = performance.now();
  try {
    const s = await importFolder(p, root, { decodePool: pool });
    const seconds = (performance.now() - started) / 1000;
    const reasons = new Map<string, number>();
    for (const r of s.rejected) reasons.set(r.code, (reasons.get(r.code) ?? 0) + 1);
    console.log(
      `\nHostile import: ${named} named cases + ${mutants.length} fuzzed mutants (seed ${values.seed})`,
    );
    console.log(`  files tried         ${s.filesSeen}`);
    console.log(`  imported            ${s.added}`);
    console.log(`  duplicates          ${s.duplicates}`);
    console.log(`  rejected            ${s.rejected.length}`);
    for (const [code, n] of [...reasons].sort((a, b) => b[1] - a[1]))
      console.log(`    ${code.padEnd(18)}${n}`);
    console.log(`  decoder crashes     ${pool.crashes} (each fails one file)`);
    console.log(`  decoder time-outs   ${pool.timeouts}`);
    console.log(`  accounted for       ${s.added + s.duplicates + s.rejected.length} of ${s.filesSeen}`);
    console.log(
      `  time                ${seconds.toFixed(1)} s (${(s.filesSeen / seconds).toFixed(0)} files/s)`,
    );
    if (!sound(p.file)) appCrashes++;
  } catch (e) {
    appCrashes++;
    console.log(`  the import itself failed: ${(e as Error).message}`);
  } finally {
    pool.close();
    p.close();
  }
  return appCrashes;
}

async function importKills(n: number): Promise<void> {
  const total = fs
    .readdirSync(BCCD, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(jpe?g|png)$/i.test(e.name)).length;
  for (let k = 0; k < n; k++) {
    const file = path.join(work, `import-kill-${k}.fsl`);
    fewshot('project', 'create', file);
    const target = 50 + rng.int(total - 150);
    const labels = new Map<string, string>();
    const { db, hit } = await killWhen(file, ['import', file, BCCD], (d) => {
      const rows = d
        .prepare('SELECT i.sha256 AS s, c.name AS c FROM images i JOIN classes c ON c.id = i.class_id')
        .all() as { s: string; c: string }[];
      if (rows.length < target) return false;
      for (const r of rows) labels.set(r.s, r.c);
      return true;
    });
    db.close();
    const ok = sound(file);
    const p = Project.open(file);
    const after = new Map(p.images.list().map((i) => [i.sha256, i.className]));
    const lost = [...labels].filter(([s, c]) => after.get(s) !== c).length;
    const s = await importFolder(p, BCCD);
    const distinct = p.db.prepare('SELECT count(DISTINCT sha256) FROM images').pluck().get() as number;
    const note = `${labels.size} labelled images committed at the kill; re-import added ${s.added} → ${p.images.count()} of ${total}`;
    kills.push({
      what: 'import',
      at: hit ? `${labels.size} rows` : 'finished first',
      sound: ok,
      lost: lost + (total - p.images.count()),
      duplicates: p.images.count() - distinct,
      note,
    });
    p.close();
  }
}

function bccdSubset(perClass: number): string {
  const dir = path.join(work, `bccd-${perClass}`);
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(dir, cls), { recursive: true });
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, perClass))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(dir, cls, f));
  }
  return dir;
}

async function batchKills(n: number): Promise<void> {
  const file = path.join(work, 'batch.fsl');
  fewshot('project', 'create', file);
  fewshot('import', file, bccdSubset(12));
  const model = (
    JSON.parse(
      fewshot('train', file, '--backbone', 'squeezenet1_1-imagenet', '--strategy', 'linear', '--json'),
    ) as { modelId: string }
  ).modelId;
  const reference = path.join(work, 'batch-reference.csv');
  fewshot('classify', file, '--model', model, BCCD, '--out', reference);
  const expected = fs.readFileSync(reference, 'utf8');
  const files = expected.trim().split('\n').length - 1;
  for (let k = 0; k < n; k++) {
    const out = path.join(work, `batch-kill-${k}.csv`);
    const target = 50 + rng.int(files - 150);
    let done: string[] = [];
    const { db, hit } = await killWhen(
      file,
      ['classify', file, '--model', model, BCCD, '--out', out],
      (d) => {
        const rows = d
          .prepare(
            'SELECT p.rel_path FROM predictions p JOIN batch_runs b ON b.id = p.run_id WHERE b.params LIKE ?',
          )
          .pluck()
          .all(`%batch-kill-${k}.csv%`) as string[];
        if (rows.length < target) return false;
        done = rows;
        return true;
      },
    );
    db.close();
    const ok = sound(file);
    fewshot('classify', file, '--model', model, BCCD, '--out', out);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').slice(1);
    const paths = lines.map((l) => l.split(',')[0]?.replace(/^"|"$/g, '') ?? '');
    const present = new Set(paths);
    kills.push({
      what: 'batch classification',
      at: hit ? `${done.length} of ${files} files` : 'finished first',
      sound: ok,
      lost: done.filter((p) => !present.has(p)).length + Math.max(0, files - present.size),
      duplicates: paths.length - present.size,
      note:
        fs.readFileSync(out, 'utf8') === expected ? 'CSV identical to an uninterrupted run' : 'CSV differs',
    });
  }
}

async function trainingKills(n: number): Promise<void> {
  const base = path.join(work, 'train-base.fsl');
  fewshot('project', 'create', base);
  fewshot('import', base, bccdSubset(12));
  const args = ['--backbone', 'squeezenet1_1-imagenet', '--strategy', 'last-stage', '--epochs', '6'];
  const whole = path.join(work, 'train-whole.fsl');
  fs.copyFileSync(base, whole);
  const reference = (
    JSON.parse(fewshot('train', whole, ...args, '--json')) as { params: { weightsSha256: string } }
  ).params.weightsSha256;
  const labels = (file: string) => {
    const p = Project.open(file, { readonly: true });
    const m = new Map(p.images.list().map((i) => [i.sha256, i.className]));
    p.close();
    return m;
  };
  const before = labels(base);
  for (let k = 0; k < n; k++) {
    const file = path.join(work, `train-kill-${k}.fsl`);
    fs.copyFileSync(base, file);
    const target = 1 + rng.int(4);
    let epoch = 0;
    const { db, hit } = await killWhen(file, ['train', file, ...args], (d) => {
      epoch = (d.prepare('SELECT max(epoch) FROM checkpoints').pluck().get() as number | null) ?? 0;
      return epoch >= target;
    });
    db.close();
    const ok = sound(file);
    const after = labels(file);
    const lost = [...before].filter(([s, c]) => after.get(s) !== c).length;
    const resumed = JSON.parse(fewshot('train', file, ...args, '--json')) as {
      params: { weightsSha256: string; resumedFromEpoch: number };
    };
    kills.push({
      what: 'training (last stage)',
      at: hit ? `after epoch ${epoch} of 6` : 'finished first',
      sound: ok,
      lost,
      duplicates: 0,
      note: `resumed from epoch ${resumed.params.resumedFromEpoch}; weights ${resumed.params.weightsSha256 === reference ? 'identical to' : 'DIFFERENT from'} an uninterrupted run`,
    });
  }
}

async function main(): Promise<void> {
  console.log(`FewShot Lab robustness · ${os.cpus().length} cores · node ${process.version}`);
  const appCrashes = await hostileImport();
  const n = Number(values.kills);
  if (fs.existsSync(BCCD)) {
    ENV.FEWSHOT_MODELS = path.join(SHARED, 'models');
    await importKills(n);
    await batchKills(n);
    await trainingKills(Math.max(1, n - 1));
  } else console.log(`\nKill -9 runs skipped: ../shared is absent (${SHARED}).`);
  console.log('\nkill -9 runs');
  for (const k of kills)
    console.log(
      `  ${k.what.padEnd(22)} killed ${k.at.padEnd(22)} integrity ${k.sound ? 'ok' : 'FAILED'} · rows lost ${k.lost} · duplicates ${k.duplicates} · ${k.note}`,
    );
  const lost = kills.reduce((a, k) => a + k.lost + k.duplicates + (k.sound ? 0 : 1), 0);
  console.log(`\napp crashes: ${appCrashes} (must be 0)`);
  console.log(`kill -9 runs: ${kills.length}, rows lost: ${lost} (must be 0)`);
  fs.rmSync(work, { recursive: true, force: true });
  process.exitCode = appCrashes || lost ? 1 : 0;
}

await main();
