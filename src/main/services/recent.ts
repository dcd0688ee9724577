// The recently opened projects, kept in the app's data folder.

import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../engine/atomic-file.ts';

function read(dataDir: string): string[] {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(dataDir, 'recent.json'), 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** The recent projects that still exist, newest first. */
export function recentProjects(dataDir: string): string[] {
  return read(dataDir).filter((f) => fs.existsSync(f));
}

export function rememberProject(dataDir: string, file: string): void {
  const files = [file, ...read(dataDir).filter((f) => f !== file)].slice(0, 10);
  writeFileAtomic(path.join(dataDir, 'recent.json'), JSON.stringify(files));
}
