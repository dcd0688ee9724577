import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { latestSchemaVersion, openDatabase } from '../../src/main/store/connection.ts';
import { MIGRATIONS } from '../../src/main/store/migrations/index.ts';
import { Project } from '../../src/main/store/project.ts';
import { FewShotError } from '../../src/shared/errors.ts';
import { tmpDir } from '../helpers/env.ts';

function tables(db: Database.Database): Map<string, string> {
  const rows = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all() as {
    name: string;
    sql: string;
  }[];
  return new Map(rows.map((r) => [r.name, r.sql]));
}

test('migration 0001 creates the schema as STRICT tables and sets user_version', () => {
  const file = path.join(tmpDir(), 'a.fsl');
  const db = openDatabase(file, { create: true, migrations: MIGRATIONS.filter((m) => m.version <= 1) });
  const t = tables(db);
  for (const name of [
    'classes',
    'images',
    'image_blobs',
    'import_roots',
    'feature_cache',
    'jobs',
    'models',
    'batch_runs',
    'predictions',
    'audit_log',
    'import_rejections',
  ]) {
    assert.ok(t.has(name), `missing table ${name}`);
    assert.match(t.get(name) as string, /STRICT/, `${name} is not STRICT`);
  }
  assert.equal(db.pragma('user_version', { simple: true }), 1);
  db.close();
});

test('the connection factory sets WAL, synchronous=FULL, foreign keys and a busy timeout', () => {
  const file = path.join(tmpDir(), 'p.fsl');
  const db = openDatabase(file, { create: true });
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('synchronous', { simple: true }), 2);
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
  assert.ok((db.pragma('busy_timeout', { simple: true }) as number) >= 1000);
  assert.equal(db.pragma('user_version', { simple: true }), latestSchemaVersion());
  db.close();
});

test('a STRICT table refuses a value of the wrong type', () => {
  const db = openDatabase(path.join(tmpDir(), 's.fsl'), { create: true });
  const insert = db.prepare(
    "INSERT INTO feature_cache (sha256, backbone_id, view, dim, vector, created_at) VALUES ('s', 'b', 'eval', ?, x'00', 't')",
  );
  assert.throws(() => insert.run('five hundred'), /cannot store TEXT value in INTEGER column/);
  db.close();
});

test('a project from a newer app version is refused and left untouched', () => {
  const file = path.join(tmpDir(), 'new.fsl');
  Project.create(file).close();
  const raw = new Database(file);
  raw.pragma('user_version = 99');
  raw.close();
  const before = fs.readFileSync(file);
  assert.throws(
    () => Project.open(file),
    (e: unknown) => e instanceof FewShotError && e.code === 'PROJECT_TOO_NEW' && /schema 99/.test(e.message),
  );
  assert.deepEqual(fs.readFileSync(file), before);
});

test('a SQLite file of another application is refused', () => {
  const file = path.join(tmpDir(), 'other.db');
  const raw = new Database(file);
  raw.exec('CREATE TABLE t (x)');
  raw.close();
  assert.throws(
    () => Project.open(file),
    (e: unknown) => e instanceof FewShotError && e.code === 'PROJECT_INVALID',
  );
  assert.throws(
    () => Project.open(path.join(tmpDir(), 'missing.fsl')),
    (e: unknown) => e instanceof FewShotError && e.code === 'NOT_FOUND',
  );
});

test('migrations run once each and in order; a failing migration leaves the file at its last good version', () => {
  const file = path.join(tmpDir(), 'm.fsl');
  openDatabase(file, { create: true }).close();
  const broken = [
    ...MIGRATIONS,
    {
      version: latestSchemaVersion() + 1,
      name: 'broken',
      up: (db: Database.Database) =>
        db.exec('CREATE TABLE half (x INTEGER) STRICT; SELECT no_such_function();'),
    },
  ];
  assert.throws(() => openDatabase(file, { migrations: broken }));
  const db = openDatabase(file);
  assert.equal(db.pragma('user_version', { simple: true }), latestSchemaVersion());
  assert.equal(tables(db).has('half'), false, 'the failed migration was rolled back');
  db.close();
});

test('the audit log is append-only and hash-chained', () => {
  const p = Project.create(path.join(tmpDir(), 'audit.fsl'));
  p.audit.append('relabel', { image: 1, from: 'A', to: 'B' });
  p.audit.append('export', { model: 'm1' });
  assert.equal(p.audit.verify(), null);
  const entries = p.audit.list();
  assert.deepEqual(
    entries.map((e) => e.action),
    ['project.create', 'relabel', 'export'],
  );
  assert.equal(entries[1]?.prevHash, entries[0]?.hash);
  assert.throws(() => p.db.prepare("UPDATE audit_log SET action = 'x' WHERE id = 1").run(), /append-only/);
  assert.throws(() => p.db.prepare('DELETE FROM audit_log').run(), /append-only/);
  // Tampering behind the triggers' back is detected by the chain.
  p.db.exec('DROP TRIGGER audit_log_no_update');
  p.db.prepare("UPDATE audit_log SET details = '{}' WHERE id = 2").run();
  assert.equal(p.audit.verify(), 2);
  p.close();
});

test('jobs left running by a dead process are marked interrupted on reopen', () => {
  const file = path.join(tmpDir(), 'jobs.fsl');
  const p = Project.create(file);
  const id = p.jobs.create('import', { root: 'x' });
  p.close();
  const q = Project.open(file);
  const job = q.jobs.get(id);
  assert.equal(job?.status, 'failed');
  assert.match(job?.error?.message ?? '', /Interrupted/);
  q.close();
});

test('a project is copied beside itself before its schema is upgraded, and can be backed up online', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'up.fsl');
  const p = Project.create(file);
  p.images.ensureClass('A');
  p.close();
  const next = {
    version: latestSchemaVersion() + 1,
    name: 'add-notes',
    up: (db: Database.Database) =>
      db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL) STRICT'),
  };
  openDatabase(file, { migrations: [...MIGRATIONS, next] }).close();
  const backups = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`up.fsl.v${latestSchemaVersion()}-`) && f.endsWith('.backup'));
  assert.equal(backups.length, 1, 'one copy before the upgrade');
  const old = new Database(path.join(dir, backups[0] as string), { readonly: true });
  assert.equal(
    old.pragma('user_version', { simple: true }),
    latestSchemaVersion(),
    'the copy is the old version',
  );
  assert.equal((old.prepare('SELECT count(*) AS n FROM classes').get() as { n: number }).n, 1);
  old.close();

  const q = Project.open(path.join(dir, backups[0] as string));
  const online = path.join(dir, 'online.fsl');
  await q.backup(online);
  q.close();
  const copy = new Database(online, { readonly: true });
  assert.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
  assert.equal((copy.prepare('SELECT name FROM classes').get() as { name: string }).name, 'A');
  copy.close();
});

test('migration 0002 adds the checkpoints table to a version-1 project, keeping its data', () => {
  const file = path.join(tmpDir(), 'v1.fsl');
  const db = openDatabase(file, { create: true, migrations: MIGRATIONS.filter((m) => m.version <= 1) });
  db.prepare('INSERT INTO classes (name, created_at) VALUES (?, ?)').run('kept', 't');
  db.close();
  const up = openDatabase(file, { migrations: MIGRATIONS.filter((m) => m.version <= 2) });
  assert.equal(up.pragma('user_version', { simple: true }), 2);
  assert.match(tables(up).get('checkpoints') ?? '', /STRICT/);
  assert.equal((up.prepare('SELECT name FROM classes').get() as { name: string }).name, 'kept');
  up.close();
  const p = Project.open(file);
  p.saveCheckpoint('k', 3, Buffer.from('state'));
  assert.deepEqual(p.checkpoint('k'), { epoch: 3, state: Buffer.from('state') });
  p.dropCheckpoint('k');
  assert.equal(p.checkpoint('k'), null);
  p.close();
});

test('migration 0003 adds stored evaluations and names batch jobs "batch", keeping the data', () => {
  const file = path.join(tmpDir(), 'v2.fsl');
  const db = openDatabase(file, { create: true, migrations: MIGRATIONS.filter((m) => m.version <= 2) });
  db.prepare(
    "INSERT INTO jobs (id, kind, status, params, created_at, updated_at) VALUES ('j1', 'classify', 'done', '{}', 't', 't')",
  ).run();
  db.close();
  const up = openDatabase(file);
  assert.equal(up.pragma('user_version', { simple: true }), 3);
  assert.match(tables(up).get('evaluations') ?? '', /STRICT/);
  assert.equal(up.prepare("SELECT kind FROM jobs WHERE id = 'j1'").pluck().get(), 'batch');
  up.close();
  const p = Project.open(file);
  const key = { modelId: 'm', protocol: 'default', seed: 0, groupAware: true, dataFingerprint: 'f' };
  p.db.pragma('foreign_keys = OFF');
  p.evaluations.put(key, { figures: 1 }, null);
  assert.deepEqual(p.evaluations.get(key)?.result, { figures: 1 });
  assert.equal(p.evaluations.get({ ...key, dataFingerprint: 'g' }), null, 'other data, no reuse');
  p.close();
});
