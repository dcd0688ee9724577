// Project files: create, open (always with SQLite's quick check), settings, backups and recovery.

import fs from 'node:fs';
import path from 'node:path';
import type { ProjectInfo } from '../../shared/contract.ts';
import type { BackupInfo, HighBitDepth, RecoveryReport } from '../../shared/domain.ts';
import { FewShotError } from '../../shared/errors.ts';
import { checkProjectFile } from '../store/corruption.ts';
import { Project, PROJECT_EXTENSION } from '../store/project.ts';
import { setLockProgram } from '../store/project-lock.ts';
import { findBackups, recoverProject, restoreBackup } from '../store/recover.ts';

/** A project path as given, absolute, with `.fsl` added when it has no extension. */
export function projectPath(file: string): string {
  const abs = path.resolve(file);
  return path.extname(abs) ? abs : `${abs}${PROJECT_EXTENSION}`;
}

export function createProject(file: string, name?: string): Project {
  const abs = projectPath(file);
  const dir = path.dirname(abs);
  if (!fs.existsSync(dir))
    throw new FewShotError(
      'NOT_FOUND',
      `The folder ${dir} does not exist; create it first or choose another.`,
    );
  return Project.create(abs, name);
}

/** Opens a project for use: a damaged file is PROJECT_CORRUPT before anything reads it. */
export function openProject(file: string): Project {
  return Project.open(path.resolve(file), { check: true });
}

/**
 * Opens a project only to read it: no write lock, so it works while the app or a command has it open
 * (PROJECT_IN_USE is for writers only), and on read-only storage. Nothing is written, not even the marks
 * on jobs left running.
 */
export function openProjectReadOnly(file: string): Project {
  return Project.open(path.resolve(file), { check: true, readonly: true });
}

/** Opens a project, runs `fn`, and closes it (the command line's one project per command). */
export async function withProject<T>(
  file: string,
  fn: (p: Project) => Promise<T>,
  options: { readonly?: boolean } = {},
): Promise<T> {
  const p = options.readonly ? openProjectReadOnly(file) : openProject(file);
  try {
    return await fn(p);
  } finally {
    p.close();
  }
}

/** How this process is named to another one that finds the project in use ("`fewshot train`"). */
export function nameThisProgram(name: string): void {
  setLockProgram(name);
}

export function projectInfo(p: Project): ProjectInfo {
  return {
    file: p.file,
    name: p.meta('name') ?? path.basename(p.file),
    images: p.images.count(),
    classes: p.images.classes().length,
    highBitDepth: p.highBitDepth(),
  };
}

export function updateSettings(p: Project, settings: { highBitDepth?: HighBitDepth }): ProjectInfo {
  if (settings.highBitDepth) p.setHighBitDepth(settings.highBitDepth);
  return projectInfo(p);
}

function existingFile(file: string): string {
  const abs = path.resolve(file);
  if (!fs.statSync(abs, { throwIfNoEntry: false })?.isFile())
    throw new FewShotError('NOT_FOUND', `No file at ${file}.`);
  return abs;
}

/** What is wrong with a damaged file and which backups beside it could replace it. */
export function recoveryOptions(file: string): { file: string; problems: string[]; backups: BackupInfo[] } {
  const abs = existingFile(file);
  return { file: abs, problems: checkProjectFile(abs), backups: findBackups(abs) };
}

/** Copies everything readable of a damaged file into a new project beside it (the file is never changed). */
export function recoverIntoNew(file: string): RecoveryReport {
  return recoverProject(existingFile(file));
}

/** A backup restored as a copy beside the damaged file, opened. */
export function restoreFromBackup(file: string, backup: string): Project {
  return openProject(restoreBackup(existingFile(backup), existingFile(file)));
}

export async function backupProject(p: Project, out: string): Promise<{ file: string }> {
  await p.backup(out);
  return { file: path.resolve(out) };
}
