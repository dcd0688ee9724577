// Walks an import folder in a stable order, one directory at a time, yielding files with their class:
// the first folder level under the root names the class; files directly in the root are unlabelled.

import fs from 'node:fs';
import path from 'node:path';
import { fsReason } from '../fs-errors.ts';

export interface ScannedFile {
  abs: string;
  /** Relative to the root, forward slashes. */
  rel: string;
  className: string | null;
  /** Set for a folder that could not be listed: its files are unknown, and the user must hear of it. */
  unlisted?: string;
}

/** Operating-system clutter that is never a lab's image. */
const JUNK = /^(\.DS_Store|Thumbs\.db|desktop\.ini|\._.*|\.~lock.*)$/i;
/** Side files at the root (a groups CSV, notes) are not candidate images. */
const ROOT_SIDECAR = /\.(csv|tsv|txt|md|json|xlsx?)$/i;

export async function* scanFolder(root: string): AsyncGenerator<ScannedFile> {
  const base = path.resolve(root);
  async function* walk(dir: string, relDir: string, className: string | null): AsyncGenerator<ScannedFile> {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (e) {
      // A folder that cannot be listed (permission, a share that went away) is reported, not skipped.
      const why = fsReason(e, 'it disappeared during the scan');
      yield { abs: dir, rel: relDir || '.', className, unlisted: `The folder could not be listed (${why}).` };
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (JUNK.test(e.name) || e.name.startsWith('.')) continue;
      const abs = path.join(dir, e.name);
      const rel = relDir ? `${relDir}/${e.name}` : e.name;
      if (e.isDirectory()) yield* walk(abs, rel, className ?? e.name);
      else if (e.isFile() || e.isSymbolicLink()) {
        if (!relDir && ROOT_SIDECAR.test(e.name)) continue;
        yield { abs, rel, className };
      }
    }
  }
  yield* walk(base, '', null);
}
