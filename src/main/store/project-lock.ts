// One writer per project: a lock file beside the project (`lab.fsl.lock`) names the process that has it
// open for writing, so a second app or command is refused with PROJECT_IN_USE, told who holds it, and
// never marks the first one's running jobs as interrupted. Read-only opens take no lock.
//
// Why a lock file: SQLite's own locks serialise transactions, not sessions (two apps would each think the
// project and its running jobs are theirs); fcntl/flock locks are out of reach from Node without a native
// module, vanish silently on some network shares and cannot say who holds them. A file created with
// O_EXCL works the same on a local disk, an SMB/NFS share and an exFAT stick (which has no hard links),
// and carries the holder's pid, user, host and program. Its weakness, a lock left by a process that died
// (kill -9, a power cut), is handled here: on the same host, a lock whose pid is not alive, or that was
// written before the machine last started, is stale and taken over (the project's audit trail records it).
// A lock from another host cannot be checked and is reported with how to remove it by hand.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';

/** What the lock file holds (JSON). */
export interface LockHolder {
  pid: number;
  host: string;
  user: string;
  /** What holds it, as a person would name it: "FewShot Lab", "`fewshot train`". */
  program: string;
  /** ISO time the lock was taken. */
  started: string;
  /** When the holder's machine last started (ms since the epoch): a lock from before a reboot is stale. */
  boot: number;
}

export interface ProjectLock {
  readonly file: string;
  /** A stale lock this open replaced (its holder had died), for the audit trail; null otherwise. */
  readonly takenOver: LockHolder | null;
  /** This process held it already (another open of the same project): its running jobs are live. */
  readonly shared: boolean;
  release(): void;
}

interface Held {
  file: string;
  holder: LockHolder;
  count: number;
}

/** A lock file with no readable holder younger than this may be one being written right now. */
const UNREADABLE_GRACE_MS = 10_000;
/** Boot times computed from the uptime wobble by a second or so; a reboot moves them by far more. */
const BOOT_TOLERANCE_MS = 60_000;

const held = new Map<string, Held>();
let program = 'FewShot Lab';
let exitHookInstalled = false;

/** Names this process in the locks it takes (the command line calls it with its command). */
export function setLockProgram(name: string): void {
  program = name;
}

export function lockFileOf(projectFile: string): string {
  return `${path.resolve(projectFile)}.lock`;
}

/**
 * Takes the write lock of `projectFile` for this process. A second open in the same process shares it
 * (the window reopening its own project); another live process holding it is PROJECT_IN_USE.
 */
export function acquireProjectLock(projectFile: string): ProjectLock {
  const file = lockFileOf(projectFile);
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return handle(file, mine, null, true);
  }
  const me = thisProcess();
  let takenOver: LockHolder | null = null;
  // A few rounds: another process may take or drop the lock between our looks.
  for (let round = 0; round < 5; round++) {
    if (tryCreate(file, me)) {
      const entry: Held = { file, holder: me, count: 1 };
      held.set(file, entry);
      installExitHook();
      return handle(file, entry, takenOver, false);
    }
    const found = readLock(file);
    if (found.state === 'gone') continue;
    if (found.state === 'unreadable') {
      if (found.ageMs < UNREADABLE_GRACE_MS) break;
      if (removeIfUnchanged(file, found.raw)) continue;
      break;
    }
    const holder = found.holder;
    if (isStale(holder, me)) {
      if (removeIfUnchanged(file, found.raw)) takenOver = holder;
      continue;
    }
    // Another thread of this very process holds it: share it without owning it.
    if (holder.pid === process.pid && holder.host === me.host)
      return { file, takenOver: null, shared: true, release: () => undefined };
    throw inUse(projectFile, file, holder);
  }
  const last = readLock(file);
  throw last.state === 'held'
    ? inUse(projectFile, file, last.holder)
    : new FewShotError(
        'PROJECT_IN_USE',
        `${path.basename(projectFile)} is being opened by another program right now; try again in a moment.`,
      );
}

function handle(file: string, entry: Held, takenOver: LockHolder | null, shared: boolean): ProjectLock {
  let released = false;
  return {
    file,
    takenOver,
    shared,
    release() {
      if (released) return;
      released = true;
      if (--entry.count > 0) return;
      held.delete(file);
      removeOwn(entry);
    },
  };
}

function thisProcess(): LockHolder {
  let user = 'unknown';
  try {
    user = os.userInfo().username || user;
  } catch {
    // no passwd entry (a container): the pid and host still name the holder
  }
  return {
    pid: process.pid,
    host: os.hostname(),
    user,
    program,
    started: new Date().toISOString(),
    boot: bootTime(),
  };
}

function bootTime(): number {
  return Math.round(Date.now() - os.uptime() * 1000);
}

/** O_EXCL: exactly one process creates the file; the content follows at once and is flushed. */
function tryCreate(file: string, me: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    fs.writeSync(fd, `${JSON.stringify(me)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

type Found =
  | { state: 'gone' }
  | { state: 'unreadable'; raw: string; ageMs: number }
  | { state: 'held'; raw: string; holder: LockHolder };

function readLock(file: string): Found {
  let raw: string;
  let ageMs: number;
  try {
    raw = fs.readFileSync(file, 'utf8');
    ageMs = Date.now() - fs.statSync(file).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'gone' };
    throw e;
  }
  try {
    const v = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && typeof v.host === 'string')
      return {
        state: 'held',
        raw,
        holder: {
          pid: v.pid,
          host: v.host,
          user: typeof v.user === 'string' ? v.user : 'unknown',
          program: typeof v.program === 'string' ? v.program : 'another program',
          started: typeof v.started === 'string' ? v.started : '',
          boot: typeof v.boot === 'number' ? v.boot : 0,
        },
      };
  } catch {
    // half-written or not ours: judged by its age below
  }
  return { state: 'unreadable', raw, ageMs };
}

function isStale(holder: LockHolder, me: LockHolder): boolean {
  if (holder.host !== me.host) return false;
  if (holder.boot && Math.abs(holder.boot - me.boot) > BOOT_TOLERANCE_MS) return true;
  return !alive(holder.pid);
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes a stale lock only if it still holds what we judged stale: of two processes taking over at
 * once, the second must not remove the lock the first has just created.
 */
function removeIfUnchanged(file: string, raw: string): boolean {
  try {
    if (fs.readFileSync(file, 'utf8') !== raw) return false;
    fs.unlinkSync(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

function removeOwn(entry: Held): void {
  try {
    const found = readLock(entry.file);
    if (
      found.state === 'held' &&
      found.holder.pid === entry.holder.pid &&
      found.holder.started === entry.holder.started
    )
      fs.unlinkSync(entry.file);
  } catch {
    // The folder went read-only or away: the next open sees a dead pid and takes over.
  }
}

/** Locks go with the process on any exit Node sees; a kill -9 leaves them to the stale check. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const entry of held.values()) removeOwn(entry);
    held.clear();
  });
}

function clock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return 'an unknown time';
  const pad = (n: number): string => String(n).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? time
    : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** "lab.fsl is open in `fewshot train` (pid 4242, alice, ws-07, since 10:42)…" */
function inUse(projectFile: string, lockFile: string, h: LockHolder): FewShotError {
  const name = path.basename(projectFile);
  const where = `${h.program} (pid ${h.pid}, ${h.user}, ${h.host}, since ${clock(h.started)})`;
  const remote =
    h.host !== os.hostname()
      ? ` If it is no longer running on ${h.host}, delete ${path.basename(lockFile)} beside the project and try again.`
      : '';
  return new FewShotError(
    'PROJECT_IN_USE',
    `${name} is open in ${where}. Close it there, or wait for it to finish, then try again; ` +
      `reading it still works (fewshot trained, fewshot backup).${remote}`,
  );
}
