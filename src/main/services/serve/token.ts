// The prediction service's bearer token: random per start, kept in a file only the user can read, and
// compared in constant time.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fsyncFolder, temporaryPath } from '../../engine/atomic-file.ts';

export function newToken(): string {
  return crypto.randomBytes(32).toString('hex');
}

/**
 * Where a start on `port` keeps its token by default: the app's data folder (FEWSHOT_DATA_DIR, else
 * ~/.fewshot-lab, as the browser host uses), not beside the project, which may sit on a shared drive or a
 * USB stick whose file system keeps no permissions.
 */
export function defaultTokenFile(port: number): string {
  const dataDir = process.env.FEWSHOT_DATA_DIR ?? path.join(os.homedir(), '.fewshot-lab');
  return path.join(dataDir, 'serve', `${port}.token`);
}

/** Writes the token (mode 0600, in a folder created 0700), replacing the file whole. */
export function writeTokenFile(file: string, token: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = temporaryPath(file);
  // The mode is set at creation, so the token is never readable by others, not even for a moment.
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // the umask may only narrow the mode, but be explicit
    fs.writeSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncFolder(dir);
}

/** Removes the token file when it still holds this start's token (a later start may have replaced it). */
export function removeTokenFile(file: string, token: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === token) fs.rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

/** `Authorization: Bearer <token>`, compared through fixed-length digests so no length or prefix leaks. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const given = crypto
    .createHash('sha256')
    .update(m?.[1] ?? '')
    .digest();
  const expected = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, expected) && m !== null;
}
