// Telling a damaged project file apart from other failures to open it.

import path from 'node:path';
import Database from 'better-sqlite3';
import { FewShotError } from '../../shared/errors.ts';

/**
 * A damaged header makes a project look like any other file; the name tells them apart: a `.fsl` file
 * (or a backup or recovered copy of one) that SQLite cannot read is a damaged project, anything else is
 * simply not a project.
 */
function looksLikeProject(file: string): boolean {
  return /\.(fsl|backup|bak)$/i.test(file);
}

export function isCorruption(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return /SQLITE_(CORRUPT|NOTADB)/.test(code) || /malformed|not a database/i.test(String(e));
}

/** The typed error for a damaged file, or the original error when it is something else. */
export function corruptionError(file: string, e: unknown): unknown {
  if (!isCorruption(e)) return e;
  if (!looksLikeProject(file))
    return new FewShotError('PROJECT_INVALID', `${path.basename(file)} is not a FewShot Lab project file.`, {
      cause: e,
    });
  return new FewShotError(
    'PROJECT_CORRUPT',
    `${path.basename(file)} is damaged (${String((e as Error).message ?? e).slice(0, 120)}). ` +
      'It has not been changed. Open a backup or recover what can still be read into a new project.',
    { cause: e },
  );
}

export function isBusy(e: unknown): boolean {
  return /^SQLITE_BUSY/.test((e as { code?: string }).code ?? '');
}

/**
 * Another program holding the file's locks past the busy timeout (a writer frozen in a debugger, a
 * backup tool with the file locked): said plainly as PROJECT_IN_USE, or the original error when it is
 * something else.
 */
export function busyError(file: string, e: unknown): unknown {
  if (!isBusy(e)) return e;
  return new FewShotError(
    'PROJECT_IN_USE',
    `${path.basename(file)} is locked by another program that did not let go within 5 seconds. ` +
      'Try again once it has finished; nothing was changed.',
    { cause: e },
  );
}

/** Throws PROJECT_CORRUPT when SQLite's quick check finds damage. */
export function assertSound(file: string): void {
  const problems = checkProjectFile(file);
  if (problems.length && !looksLikeProject(file))
    throw new FewShotError('PROJECT_INVALID', `${path.basename(file)} is not a FewShot Lab project file.`);
  if (problems.length)
    throw new FewShotError(
      'PROJECT_CORRUPT',
      `${path.basename(file)} is damaged (${problems.join('; ').slice(0, 160)}). ` +
        'It has not been changed. Open a backup or recover what can still be read into a new project.',
    );
}

/** SQLite's quick check on a read-only connection: 'ok', or the first problems it reports. */
export function checkProjectFile(file: string): string[] {
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const rows = db.prepare('PRAGMA quick_check(5)').pluck().all() as string[];
    return rows.length === 1 && rows[0] === 'ok' ? [] : rows;
  } catch (e) {
    if (!isCorruption(e)) throw busyError(file, e);
    return [String((e as Error).message ?? e)];
  } finally {
    db?.close();
  }
}
