// The one way to open a project file: pragmas for durability, then migrations up to this app's schema.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { FewShotError } from '../../shared/errors.ts';
import { MIGRATIONS, type Migration } from './migrations/index.ts';
import { busyError, corruptionError } from './corruption.ts';

export type Db = Database.Database;

export interface OpenOptions {
  /** Create the file when it does not exist (default: false, a missing file is NOT_FOUND). */
  create?: boolean;
  readonly?: boolean;
  /** For tests: migrate only up to this version. */
  migrations?: readonly Migration[];
}

const APPLICATION_ID = 0x46534c31; // 'FSL1': marks the file as a FewShot Lab project

export function latestSchemaVersion(migrations: readonly Migration[] = MIGRATIONS): number {
  return migrations.reduce((v, m) => Math.max(v, m.version), 0);
}

export function openDatabase(file: string, options: OpenOptions = {}): Db {
  const exists = fs.existsSync(file);
  if (!exists && !options.create) throw new FewShotError('NOT_FOUND', `No project file at ${file}.`);
  if (exists && options.create === true && fs.statSync(file).size > 0) {
    throw new FewShotError('ALREADY_EXISTS', `A file already exists at ${file}.`);
  }
  if (!options.readonly) assertWritable(file, exists);
  let db: Db;
  try {
    db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: !options.create });
  } catch (e) {
    const corrupt = corruptionError(file, busyError(file, e));
    if (corrupt !== e) throw corrupt;
    throw new FewShotError('PROJECT_INVALID', `Cannot open ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    configure(db, options.readonly ?? false);
    if (!options.readonly) migrate(db, options.migrations ?? MIGRATIONS);
    else checkVersion(db, options.migrations ?? MIGRATIONS);
    return db;
  } catch (e) {
    db.close();
    if (e instanceof FewShotError) throw e;
    const corrupt = corruptionError(file, busyError(file, e));
    if (corrupt !== e) throw corrupt;
    throw new FewShotError(
      'PROJECT_INVALID',
      `${file} is not a FewShot Lab project: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * A project is written while open (labels, jobs, the audit trail, and SQLite's -wal and -shm files beside
 * it), so the file and its folder must be writable; say so plainly rather than fail at the first write.
 */
export function assertWritable(file: string, exists: boolean): void {
  const folder = path.dirname(path.resolve(file));
  // A folder that is not there is not read-only: say which one is missing.
  if (!fs.existsSync(folder)) throw new FewShotError('NOT_FOUND', `There is no folder ${folder}.`);
  for (const target of exists ? [file, folder] : [folder]) {
    try {
      fs.accessSync(target, fs.constants.W_OK);
    } catch {
      throw new FewShotError(
        'PROJECT_READONLY',
        `${path.basename(file)} cannot be opened for writing (${target === file ? 'the file' : 'its folder'} is read-only). ` +
          'Copy the project to a folder you can write to, or ask for write access; the file was not changed.',
      );
    }
  }
}

function configure(db: Db, readonly: boolean): void {
  db.pragma('busy_timeout = 5000');
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
  }
  db.pragma('foreign_keys = ON');
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new FewShotError('PROJECT_INVALID', 'This SQLite file belongs to another application.');
  }
  if (appId === 0 && version === 0 && !readonly) {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as {
      n: number;
    };
    if (tables.n > 0)
      throw new FewShotError('PROJECT_INVALID', 'This SQLite file is not a FewShot Lab project.');
  }
}

function checkVersion(db: Db, migrations: readonly Migration[]): number {
  const version = db.pragma('user_version', { simple: true }) as number;
  const latest = latestSchemaVersion(migrations);
  if (version > latest) {
    throw new FewShotError(
      'PROJECT_TOO_NEW',
      `This project was saved by a newer FewShot Lab (schema ${version}; this app reads up to ${latest}). ` +
        'Update the app to open it; the file was not changed.',
    );
  }
  return version;
}

/**
 * A consistent copy of the project (VACUUM INTO) beside it before its schema changes, so that an upgrade
 * can always be undone by hand. Returns the copy's path. Opening a project is synchronous and
 * better-sqlite3's backup API is asynchronous; VACUUM INTO gives the same transactionally consistent copy
 * in one statement (on-demand backups, `Project.backup`, use the backup API).
 */
export function backupBeforeMigration(db: Db, version: number): string | null {
  const file = db.name;
  if (!file || file === ':memory:') return null;
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const dest = `${file}.v${version}-${stamp}.backup`;
  db.prepare('VACUUM INTO ?').run(dest);
  return dest;
}

/** Applies every pending migration, each in its own transaction that also bumps user_version. */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): number {
  const current = checkVersion(db, migrations);
  const pending = [...migrations].filter((m) => m.version > current).sort((a, b) => a.version - b.version);
  if (pending.length && current > 0) backupBeforeMigration(db, current);
  for (const m of pending) {
    db.transaction(() => {
      m.up(db);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return pending.length;
}
