// The one way the app writes a file a user or another program will read (a report, a CSV, a bundle, a
// manifest): into a temporary file beside it, flushed to the disk, renamed over the target, and the
// folder flushed too — so after a crash or a power cut the file is either the old one or the whole new
// one, never half of each. A failed or cancelled write leaves nothing behind.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';

/** The temporary name beside `file`; unique per process, thread and call. */
export function temporaryPath(file: string): string {
  return `${file}.tmp-${process.pid}-${threadId}-${crypto.randomBytes(3).toString('hex')}`;
}

/** Whether a path is one of our temporary files for `file` (a batch skips them while listing). */
export function isTemporaryOf(candidate: string, file: string): boolean {
  return candidate.startsWith(`${file}.tmp-`);
}

/** Flushes a folder's entry list, so a rename in it survives a power cut (not possible on Windows). */
export function fsyncFolder(dir: string): void {
  if (process.platform === 'win32') return;
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems (network shares) refuse to sync a folder; the rename itself is still atomic.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** A file written in pieces and published whole by `commit()`; `abort()` removes what was written. */
export class AtomicFile {
  readonly file: string;
  private readonly tmp: string;
  private fd: number | null;
  private bytes = 0;

  private constructor(file: string) {
    this.file = path.resolve(file);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.tmp = temporaryPath(this.file);
    this.fd = fs.openSync(this.tmp, 'wx');
  }

  static create(file: string): AtomicFile {
    return new AtomicFile(file);
  }

  write(data: string | Uint8Array): void {
    if (this.fd === null) throw new Error('AtomicFile: write after commit or abort');
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    this.bytes += buf.length;
  }

  commit(): { out: string; bytes: number } {
    if (this.fd === null) throw new Error('AtomicFile: commit twice');
    try {
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
    }
    try {
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      fs.rmSync(this.tmp, { force: true });
      throw e;
    }
    fsyncFolder(path.dirname(this.file));
    return { out: this.file, bytes: this.bytes };
  }

  abort(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

/** Writes `data` to `file` atomically (creating its folder); returns the absolute path and the size. */
export function writeFileAtomic(file: string, data: string | Uint8Array): { out: string; bytes: number } {
  const f = AtomicFile.create(file);
  try {
    f.write(data);
  } catch (e) {
    f.abort();
    throw e;
  }
  return f.commit();
}

/** Writes a file by streaming `chunks` into it atomically: nothing appears unless all of it was written. */
export function writeChunksAtomic(
  file: string,
  chunks: Iterable<string | Uint8Array>,
): { out: string; bytes: number } {
  const f = AtomicFile.create(file);
  try {
    let buf = '';
    for (const c of chunks) {
      if (typeof c !== 'string') {
        if (buf) f.write(buf);
        buf = '';
        f.write(c);
        continue;
      }
      buf += c;
      if (buf.length > 1 << 16) {
        f.write(buf);
        buf = '';
      }
    }
    if (buf) f.write(buf);
  } catch (e) {
    f.abort();
    throw e;
  }
  return f.commit();
}
