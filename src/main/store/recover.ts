// A damaged project file: find out, list the backups beside it, and copy whatever can still be read into
// a new project. The damaged file is only ever opened read-only; nothing here writes, moves or deletes it.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { BackupInfo, RecoveryReport, TableRecovery } from '../../shared/domain.ts';
import { FewShotError } from '../../shared/errors.ts';
import { openDatabase, type Db } from './connection.ts';
import { AuditRepo } from './audit-repo.ts';
import { checkProjectFile, isCorruption } from './corruption.ts';

/** Recomputed, not recovered: features come back from the images, training restarts from epoch 0. */
const SKIPPED: Record<string, string> = {
  feature_cache: 'not copied: features are recomputed from the images when needed',
  checkpoints: 'not copied: an interrupted training run starts again',
};

/** Copies of this project lying beside it: backups made before upgrades or on demand, earlier recoveries. */
export function findBackups(file: string): BackupInfo[] {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const stem = path.basename(file, path.extname(file));
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: BackupInfo[] = [];
  for (const name of names.sort()) {
    if (name === base || !name.startsWith(stem)) continue;
    if (!/\.(backup|fsl|bak)$/i.test(name)) continue;
    const full = path.join(dir, name);
    const st = fs.statSync(full, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    let status = 'ok';
    let images: number | null = null;
    try {
      const problems = checkProjectFile(full);
      if (problems.length) status = problems.join('; ');
      else {
        const db = new Database(full, { readonly: true, fileMustExist: true });
        try {
          images = db.prepare('SELECT count(*) FROM images').pluck().get() as number;
        } finally {
          db.close();
        }
      }
    } catch (e) {
      status = String((e as Error).message ?? e).slice(0, 160);
    }
    out.push({ file: full, bytes: st.size, modifiedAt: st.mtime.toISOString(), status, images });
  }
  return out;
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
}

/** A fresh path beside `file`: `<stem>.<what>-<time>.fsl`. */
export function besidePath(file: string, what: string): string {
  const dir = path.dirname(path.resolve(file));
  const stem = path.basename(file, path.extname(file));
  let dest = path.join(dir, `${stem}.${what}-${stamp()}.fsl`);
  for (let i = 2; fs.existsSync(dest); i++) dest = path.join(dir, `${stem}.${what}-${stamp()}-${i}.fsl`);
  return dest;
}

/** Copies a backup to a new project file beside the damaged one, so the backup itself stays as it was. */
export function restoreBackup(backup: string, damaged: string): string {
  if (checkProjectFile(backup).length)
    throw new FewShotError('PROJECT_CORRUPT', `The backup ${path.basename(backup)} is damaged too.`);
  const dest = besidePath(damaged, 'restored');
  fs.copyFileSync(backup, dest, fs.constants.COPYFILE_EXCL);
  return dest;
}

function columns(db: Db, table: string): string[] {
  return (db.prepare(`PRAGMA table_info("${table}")`).all() as { name: string }[]).map((c) => c.name);
}

/** Reads every row it can, jumping over unreadable pages: rowids are probed past the damage. */
function copyRows(src: Db, dest: Db, table: string): { recovered: number; failures: number } {
  const cols = columns(dest, table).filter((c) => columns(src, table).includes(c));
  const list = cols.map((c) => `"${c}"`).join(', ');
  const read = src.prepare(`SELECT rowid AS __rowid, ${list} FROM "${table}" WHERE rowid > ? ORDER BY rowid`);
  const probe = src.prepare(`SELECT rowid FROM "${table}" WHERE rowid > ? ORDER BY rowid LIMIT 1`).pluck();
  const insert = dest.prepare(
    `INSERT OR IGNORE INTO "${table}" (rowid, ${list}) VALUES (?, ${cols.map(() => '?').join(', ')})`,
  );
  let after = Number.MIN_SAFE_INTEGER;
  let recovered = 0;
  let failures = 0;
  for (;;) {
    try {
      for (const row of read.iterate(after) as Iterable<Record<string, unknown>>) {
        const rowid = row.__rowid as number;
        recovered += insert.run(rowid, ...cols.map((c) => row[c])).changes;
        after = rowid;
      }
      return { recovered, failures };
    } catch (e) {
      if (!isCorruption(e)) throw e;
      failures++;
      // The row after `after` is unreadable (its payload, or the b-tree page holding it). Seek to the
      // first rowid above after + step: step 1 skips that row (rowids are dense) or lands on the next
      // one, doubling steps jump over a damaged b-tree page. `after` grows by at least one per failure,
      // so this ends; give up past 2^40.
      let step = 1;
      let next: number | null = null;
      while (step < 2 ** 40 && next === null) {
        const from = (after === Number.MIN_SAFE_INTEGER ? 0 : after) + step;
        try {
          next = (probe.get(from) as number | undefined) ?? null;
          if (next === null) return { recovered, failures };
          after = next - 1;
        } catch {
          step *= 2;
        }
      }
      if (next === null) return { recovered, failures };
    }
  }
}

/** Removes rows whose parent was lost (or clears the reference where it may be empty). */
function dropOrphans(db: Db): Map<string, number> {
  const dropped = new Map<string, number>();
  for (let pass = 0; pass < 10; pass++) {
    const bad = db.prepare('PRAGMA foreign_key_check').all() as {
      table: string;
      rowid: number;
      fkid: number;
    }[];
    if (!bad.length) break;
    for (const v of bad) {
      const fk = (
        db.prepare(`PRAGMA foreign_key_list("${v.table}")`).all() as { id: number; from: string }[]
      ).find((f) => f.id === v.fkid);
      const info = (
        db.prepare(`PRAGMA table_info("${v.table}")`).all() as { name: string; notnull: number }[]
      ).find((c) => c.name === fk?.from);
      if (fk && info && !info.notnull)
        db.prepare(`UPDATE "${v.table}" SET "${fk.from}" = NULL WHERE rowid = ?`).run(v.rowid);
      else {
        db.prepare(`DELETE FROM "${v.table}" WHERE rowid = ?`).run(v.rowid);
        dropped.set(v.table, (dropped.get(v.table) ?? 0) + 1);
      }
    }
  }
  return dropped;
}

/** Copies what can be read from a damaged project into a new file beside it; returns what was saved. */
export function recoverProject(file: string): RecoveryReport {
  const source = path.resolve(file);
  if (!fs.existsSync(source)) throw new FewShotError('NOT_FOUND', `No project file at ${file}.`);
  let src: Db;
  let tables: string[];
  try {
    src = new Database(source, { readonly: true, fileMustExist: true });
    tables = src
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
  } catch (e) {
    throw new FewShotError(
      'PROJECT_CORRUPT',
      `Nothing in ${path.basename(file)} can be read (${String((e as Error).message ?? e).slice(0, 120)}). ` +
        'Open a backup instead; the file has not been changed.',
      { cause: e },
    );
  }
  const destFile = besidePath(source, 'recovered');
  const dest = openDatabase(destFile, { create: true });
  const report: TableRecovery[] = [];
  try {
    dest.pragma('foreign_keys = OFF');
    const order = dest
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
      )
      .pluck()
      .all() as string[];
    dest.transaction(() => {
      for (const table of order) {
        if (SKIPPED[table]) {
          report.push({ table, recovered: 0, lost: null, orphans: 0, note: SKIPPED[table] });
          continue;
        }
        if (!tables.includes(table)) {
          report.push({ table, recovered: 0, lost: null, orphans: 0, note: 'absent from the damaged file' });
          continue;
        }
        const { recovered, failures } = copyRows(src, dest, table);
        let count: number | null = null;
        try {
          count = src.prepare(`SELECT count(*) FROM "${table}"`).pluck().get() as number;
        } catch {
          count = null;
        }
        const lost = count === null ? (failures ? null : 0) : Math.max(0, count - recovered);
        report.push({ table, recovered, lost, orphans: 0 });
      }
      const orphans = dropOrphans(dest);
      for (const t of report) {
        const n = orphans.get(t.table) ?? 0;
        t.orphans = n;
        t.recovered -= n;
      }
      new AuditRepo(dest).append('project.recovered', {
        from: path.basename(source),
        tables: Object.fromEntries(report.map((t) => [t.table, { recovered: t.recovered, lost: t.lost }])),
      });
    })();
    dest.pragma('foreign_keys = ON');
    const problems = dest.prepare('PRAGMA integrity_check').pluck().all() as string[];
    if (problems.join() !== 'ok')
      throw new FewShotError('INTERNAL', `The recovered copy failed its check: ${problems.join('; ')}`);
    const auditIntact = new AuditRepo(dest).verify() === null;
    return { file: destFile, source, tables: report, auditIntact };
  } catch (e) {
    // Only the new, incomplete copy is removed; the damaged original is never touched.
    dest.close();
    for (const f of [destFile, `${destFile}-wal`, `${destFile}-shm`]) fs.rmSync(f, { force: true });
    throw e;
  } finally {
    if (dest.open) dest.close();
    src.close();
  }
}
