// The browser host's file browser: which folders it may show (the user's home, mounted drives, and any
// named in FEWSHOT_BROWSE_ROOTS) and one folder's listing. A browser tab cannot open a native dialog, so
// the host lists folders itself, and never outside those roots: every path is resolved through its links
// before it is read, so a link cannot lead out of them.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';
import type { BrowseRoot, FileEntry, FilesListRequest, FolderListing } from '../../shared/files.ts';

/** More entries than anyone scrolls through; the rest is counted, not listed. */
export const LISTING_LIMIT = 5000;

interface Root extends BrowseRoot {
  /** The path as configured (absolute, normalised), which may differ from `path` through a link. */
  given: string;
}

const caseless = process.platform === 'win32' || process.platform === 'darwin';

function same(a: string, b: string): boolean {
  return caseless ? a.toLowerCase() === b.toLowerCase() : a === b;
}

/** `p` is `root` or below it (both absolute and normalised). */
export function isInside(p: string, root: string): boolean {
  if (same(p, root)) return true;
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  return caseless ? p.toLowerCase().startsWith(prefix.toLowerCase()) : p.startsWith(prefix);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function candidateRoots(env: NodeJS.ProcessEnv): { label: string; path: string }[] {
  const out = [{ label: 'Home', path: os.homedir() }];
  if (process.platform === 'win32') {
    for (let c = 'A'.charCodeAt(0); c <= 'Z'.charCodeAt(0); c++) {
      const drive = `${String.fromCharCode(c)}:\\`;
      out.push({ label: drive.slice(0, 2), path: drive });
    }
  } else {
    const user = env.USER ?? env.LOGNAME ?? safeUserName();
    out.push({ label: '/media', path: '/media' }, { label: '/mnt', path: '/mnt' });
    if (user) out.push({ label: `/run/media/${user}`, path: path.join('/run/media', user) });
    if (process.platform === 'darwin') out.push({ label: '/Volumes', path: '/Volumes' });
  }
  // Extra roots, path-delimited (the end-to-end tests use a scratch folder this way).
  for (const p of (env.FEWSHOT_BROWSE_ROOTS ?? '').split(path.delimiter))
    if (p.trim() && path.isAbsolute(p.trim()))
      out.push({ label: path.basename(p.trim()) || p.trim(), path: p.trim() });
  return out;
}

function safeUserName(): string | null {
  try {
    return os.userInfo().username;
  } catch {
    return null;
  }
}

function rootsWithGiven(env: NodeJS.ProcessEnv): Root[] {
  const roots: Root[] = [];
  for (const c of candidateRoots(env)) {
    const given = path.resolve(c.path);
    if (!isDir(given)) continue;
    let real: string;
    try {
      real = fs.realpathSync.native(given);
    } catch {
      continue;
    }
    if (!roots.some((r) => same(r.path, real))) roots.push({ label: c.label, path: real, given });
  }
  return roots;
}

/** The folders the file browser may show, those that exist, each once. */
export function browseRoots(env: NodeJS.ProcessEnv = process.env): BrowseRoot[] {
  return rootsWithGiven(env).map(({ label, path: p }) => ({ label, path: p }));
}

function notAllowed(p: string): FewShotError {
  return new FewShotError(
    'PATH_NOT_ALLOWED',
    `${p} is outside the folders this app may show (your home folder and mounted drives).`,
  );
}

function fsError(e: unknown, p: string): FewShotError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new FewShotError('NOT_FOUND', `No folder at ${p}.`);
  if (code === 'EACCES' || code === 'EPERM')
    return new FewShotError('UNREADABLE', `The folder ${p} cannot be read: permission denied.`);
  return new FewShotError('UNREADABLE', `The folder ${p} cannot be read (${code ?? String(e)}).`);
}

interface Candidate {
  name: string;
  kind: 'folder' | 'file';
  full: string;
}

/** What a directory entry is, following a link only when its target stays inside the roots. */
function entryKind(dir: string, d: fs.Dirent, roots: Root[]): 'folder' | 'file' | null {
  if (d.isDirectory()) return 'folder';
  if (d.isFile()) return 'file';
  if (!d.isSymbolicLink()) return null; // sockets, pipes, devices
  try {
    const real = fs.realpathSync.native(path.join(dir, d.name));
    if (!roots.some((r) => isInside(real, r.path))) return null;
    const s = fs.statSync(real);
    return s.isDirectory() ? 'folder' : s.isFile() ? 'file' : null;
  } catch {
    return null; // a dangling link
  }
}

const byName = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/**
 * Lists one folder for the file browser: folders first, then (for kind "file") the files with the
 * extensions asked for, hidden names left out unless asked for. A relative path is INVALID_INPUT; a path
 * outside the roots, or one whose links lead outside them, PATH_NOT_ALLOWED; a missing one NOT_FOUND.
 */
export function listFolder(req: FilesListRequest, env: NodeJS.ProcessEnv = process.env): FolderListing {
  const roots = rootsWithGiven(env);
  const first = roots[0];
  if (!first) throw new FewShotError('NOT_FOUND', 'There is no folder this app may show.');
  const asked = req.path ?? first.path;
  if (!path.isAbsolute(asked))
    throw new FewShotError(
      'INVALID_INPUT',
      `"${asked}" is not an absolute path; give the whole path, starting at ${first.path}.`,
    );
  const wanted = path.resolve(asked);
  // Refused before the file system is asked anything, so nothing outside the roots is even probed.
  if (!roots.some((r) => isInside(wanted, r.given) || isInside(wanted, r.path))) throw notAllowed(wanted);
  let real: string;
  try {
    real = fs.realpathSync.native(wanted);
  } catch (e) {
    throw fsError(e, wanted);
  }
  if (!roots.some((r) => isInside(real, r.path))) throw notAllowed(wanted);
  let folder = real;
  let selected: string | null = null;
  try {
    if (!fs.statSync(real).isDirectory()) {
      folder = path.dirname(real);
      selected = path.basename(real);
    }
  } catch (e) {
    throw fsError(e, wanted);
  }
  let dirents: fs.Dirent[];
  try {
    dirents = fs.readdirSync(folder, { withFileTypes: true });
  } catch (e) {
    throw fsError(e, folder);
  }
  const extensions = req.kind === 'file' && req.extensions?.length ? req.extensions : null;
  const candidates: Candidate[] = [];
  const wantedFile = (name: string): boolean =>
    req.kind === 'file' && (!extensions || extensions.some((e) => name.toLowerCase().endsWith(e)));
  for (const d of dirents) {
    if (!req.showHidden && d.name.startsWith('.')) continue;
    // Files that cannot be wanted are skipped before any link is followed.
    if (d.isFile() && !wantedFile(d.name)) continue;
    const kind = entryKind(folder, d, roots);
    if (!kind || (kind === 'file' && !wantedFile(d.name))) continue;
    candidates.push({ name: d.name, kind, full: path.join(folder, d.name) });
  }
  candidates.sort((a, b) =>
    a.kind !== b.kind
      ? a.kind === 'folder'
        ? -1
        : 1
      : byName.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const entries: FileEntry[] = [];
  for (const c of candidates.slice(0, LISTING_LIMIT)) {
    try {
      const s = fs.statSync(c.full);
      entries.push({
        name: c.name,
        kind: c.kind,
        size: c.kind === 'file' ? s.size : null,
        mtime: s.mtime.toISOString(),
      });
    } catch {
      // vanished or unreadable since it was listed: left out
    }
  }
  const root = roots
    .filter((r) => isInside(folder, r.path))
    .sort((a, b) => b.path.length - a.path.length)[0] as Root;
  const crumbs = [{ name: root.label, path: root.path }];
  const rest = path.relative(root.path, folder);
  let at = root.path;
  for (const part of rest ? rest.split(path.sep) : []) {
    at = path.join(at, part);
    crumbs.push({ name: part, path: at });
  }
  const parentDir = path.dirname(folder);
  const canGoUp = !same(parentDir, folder) && roots.some((r) => isInside(parentDir, r.path));
  return {
    path: folder,
    parent: canGoUp ? parentDir : null,
    crumbs,
    roots: roots.map(({ label, path: p }) => ({ label, path: p })),
    entries,
    truncated: Math.max(0, candidates.length - LISTING_LIMIT),
    selected,
    separator: path.sep === '\\' ? '\\' : '/',
  };
}
