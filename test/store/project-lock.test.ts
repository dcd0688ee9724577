// One writer per project: a second process opening a project held for writing gets PROJECT_IN_USE
// naming the holder, commands that only read still work, a lock left by a dead process is taken over
// (and the audit trail says so), and closing or exiting releases it. Real processes, real files.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FewShotError } from '../../src/shared/errors.ts';
import { Project } from '../../src/main/store/project.ts';
import { lockFileOf, type LockHolder } from '../../src/main/store/project-lock.ts';
import { solidPng } from '../helpers/images.ts';
import { REPO, tmpDir } from '../helpers/env.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');

function fewshot(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function holderOf(file: string): LockHolder {
  return JSON.parse(fs.readFileSync(lockFileOf(file), 'utf8')) as LockHolder;
}

function inUse(e: unknown): boolean {
  return e instanceof FewShotError && e.code === 'PROJECT_IN_USE';
}

/** A pid that was alive a moment ago and is not any more. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

function bootTime(): number {
  return Math.round(Date.now() - os.uptime() * 1000);
}

test('a project held by this process: a second process gets PROJECT_IN_USE naming it; reading still works; close releases', () => {
  const file = path.join(tmpDir('fsl-lock-'), 'lab.fsl');
  const p = Project.create(file);
  const held = holderOf(file);
  assert.equal(held.pid, process.pid);
  assert.equal(held.host, os.hostname());
  assert.equal(held.program, 'FewShot Lab');

  const write = fewshot('project', 'settings', file, '--high-bit-depth', 'percentile');
  assert.equal(write.code, 1);
  assert.match(
    write.stderr,
    new RegExp(
      `^fewshot: PROJECT_IN_USE: lab\\.fsl is open in FewShot Lab \\(pid ${process.pid}, ${held.user}, ${os.hostname()}, since \\d\\d:\\d\\d\\)`,
    ),
  );
  assert.doesNotMatch(write.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(p.highBitDepth(), 'full', 'nothing was written');

  // Commands that only read open without the lock.
  const trained = fewshot('trained', file, '--json');
  assert.equal(trained.code, 0, trained.stderr);
  assert.deepEqual(JSON.parse(trained.stdout), { models: [] });
  const copy = path.join(path.dirname(file), 'copy.fsl');
  const backup = fewshot('backup', file, '--out', copy);
  assert.equal(backup.code, 0, backup.stderr);
  const c = Project.open(copy, { check: true, readonly: true });
  assert.equal(c.audit.list()[0]?.action, 'project.create');
  c.close();
  assert.equal(holderOf(file).pid, process.pid, 'the readers left the lock alone');

  // A second open in this process shares the lock; the last close removes it.
  const again = Project.open(file);
  again.close();
  assert.ok(fs.existsSync(lockFileOf(file)), 'still held by the first open');
  p.close();
  assert.ok(!fs.existsSync(lockFileOf(file)), 'close removes the lock');
  const after = fewshot('project', 'settings', file, '--high-bit-depth', 'percentile');
  assert.equal(after.code, 0, after.stderr);
  assert.ok(!fs.existsSync(lockFileOf(file)), 'the command released it too');
});

test(
  'a project held by a running `fewshot import`: refused naming it; once it is killed, its lock is taken over with an audit line',
  { timeout: 120_000 },
  async () => {
    const dir = tmpDir('fsl-lock-cli-');
    const file = path.join(dir, 'lab.fsl');
    Project.create(file).close();
    const images = path.join(dir, 'images');
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(images, cls), { recursive: true });
      for (let i = 0; i < 100; i++)
        fs.writeFileSync(
          path.join(images, cls, `${i}.png`),
          await solidPng(96, 96, [i * 2, 90, cls === 'a' ? 10 : 200]),
        );
    }
    const child = spawn(process.execPath, [BIN, 'import', file, images], { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    try {
      const deadline = Date.now() + 60_000;
      while (!fs.existsSync(lockFileOf(file)) && Date.now() < deadline && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 2));
      // A reader is let in while the import runs; the import goes on until its job row says it is
      // running, so it is past its first open of the file (SQLite's own locks are free between writes).
      const reader = Project.open(file, { check: true, readonly: true });
      const running = (): boolean =>
        reader.jobs.list().some((j) => j.kind === 'import' && j.status === 'running');
      while (!running() && Date.now() < deadline && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 2));
      // Frozen while it holds the project, so the test sees a live holder for as long as it needs.
      child.kill('SIGSTOP');
      assert.ok(running(), 'frozen while importing');
      const holder = holderOf(file);
      assert.equal(holder.pid, child.pid);
      assert.equal(holder.program, '`fewshot import`');
      assert.throws(
        () => Project.open(file),
        (e: unknown) =>
          inUse(e) &&
          (e as Error).message.startsWith(
            `lab.fsl is open in \`fewshot import\` (pid ${child.pid}, ${holder.user}, ${os.hostname()}, since `,
          ),
      );
      // Readers still get in while the holder is frozen, and a checked one too.
      const second = Project.open(file, { check: true, readonly: true });
      assert.ok(second.jobs.list().some((j) => j.kind === 'import'));
      second.close();
      reader.close();
      child.kill('SIGKILL');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }

    // The holder died without a word: its lock is stale and this open takes it over.
    const p = Project.open(file);
    try {
      assert.equal(holderOf(file).pid, process.pid);
      const takeover = p.audit.list().find((e) => e.action === 'project.lock.takeover');
      assert.ok(takeover, 'the audit trail records the takeover');
      assert.equal(takeover.details.pid, child.pid);
      assert.equal(takeover.details.program, '`fewshot import`');
      const job = p.jobs.list().find((j) => j.kind === 'import');
      assert.equal(job?.status, 'failed', 'the killed import is marked interrupted');
      assert.match(job.error?.message ?? '', /^Interrupted/);
    } finally {
      p.close();
    }
    assert.ok(!fs.existsSync(lockFileOf(file)));
  },
);

test('stale locks: a dead pid, or a lock from before the last boot, are taken over; a lock from another host is not', () => {
  const dir = tmpDir('fsl-lock-stale-');
  const file = path.join(dir, 'lab.fsl');
  Project.create(file).close();
  const lock = (h: Partial<LockHolder>): void =>
    fs.writeFileSync(
      lockFileOf(file),
      JSON.stringify({
        pid: 1,
        host: os.hostname(),
        user: 'alice',
        program: 'FewShot Lab',
        started: new Date(Date.now() - 3_600_000).toISOString(),
        boot: bootTime(),
        ...h,
      }),
    );

  const dead = deadPid();
  lock({ pid: dead });
  const r = fewshot('project', 'settings', file, '--high-bit-depth', 'percentile');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!fs.existsSync(lockFileOf(file)));

  // pid 1 is alive, but this lock was written before the machine last started: a power cut.
  lock({ pid: 1, boot: bootTime() - 86_400_000 });
  const p = Project.open(file);
  const takeovers = p.audit.list().filter((e) => e.action === 'project.lock.takeover');
  assert.deepEqual(
    takeovers.map((e) => e.details.pid),
    [dead, 1],
  );
  p.close();

  // A live process on this host (pid 1) holds it.
  lock({ pid: 1 });
  assert.throws(() => Project.open(file), inUse);

  lock({ pid: 4242, host: 'ws-07.lab' });
  assert.throws(
    () => Project.open(file),
    (e: unknown) =>
      inUse(e) &&
      /open in FewShot Lab \(pid 4242, alice, ws-07\.lab, since [\d-]* ?\d\d:\d\d\)/.test(
        (e as Error).message,
      ) &&
      /delete lab\.fsl\.lock/.test((e as Error).message),
  );
  assert.equal(holderOf(file).host, 'ws-07.lab', 'a lock from another host is left alone');
  const reader = Project.open(file, { readonly: true });
  assert.equal(reader.highBitDepth(), 'percentile');
  reader.close();
  fs.rmSync(lockFileOf(file));
});

test('a process that exits without closing its project leaves no lock behind', () => {
  const file = path.join(tmpDir('fsl-lock-exit-'), 'lab.fsl');
  Project.create(file).close();
  const script = `import fs from 'node:fs';
import { Project } from ${JSON.stringify(path.join(REPO, 'src/main/store/project.ts'))};
Project.open(${JSON.stringify(file)});
process.stdout.write(String(fs.existsSync(${JSON.stringify(lockFileOf(file))})));
process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: REPO,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'true', 'held while it ran');
  assert.ok(!fs.existsSync(lockFileOf(file)), 'removed on exit');
});

test('a file another program keeps locked is PROJECT_IN_USE after the busy timeout, not a raw SQLite error', async () => {
  const file = path.join(tmpDir('fsl-lock-busy-'), 'lab.fsl');
  Project.create(file).close();
  // Exclusive locking mode: after one write the other program holds the file itself, readers included.
  const script = `const Database = require('better-sqlite3');
const db = new Database(${JSON.stringify(file)});
db.pragma('locking_mode = EXCLUSIVE');
db.exec("BEGIN EXCLUSIVE; UPDATE project_meta SET value = value WHERE key = 'name'; COMMIT");
process.stdout.write('locked\\n');
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => (String(d).includes('locked') ? resolve() : undefined));
      child.on('exit', (code) => reject(new Error(`the locking program exited (${code})`)));
    });
    const busy = (e: unknown): boolean =>
      inUse(e) &&
      /^lab\.fsl is locked by another program that did not let go within 5 seconds/.test(
        (e as Error).message,
      );
    assert.throws(() => Project.open(file, { readonly: true }), busy);
    assert.throws(() => Project.open(file, { check: true, readonly: true }), busy);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const p = Project.open(file, { readonly: true });
  assert.equal(p.jobs.list().length, 0, 'readable again once the other program has gone');
  p.close();
});
