// The shell survives its engine: the engine (the real Backend in a child process, as the utility process
// runs it) is killed with SIGKILL while a request waits and a job runs. The request fails with
// ENGINE_STOPPED at once, the engine is restarted and opens the project again, the job's row says
// interrupted, the next request is answered, and a crash loop ends in a stopped state that says so.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { AuditEntryView, JobSummary } from '../../src/shared/contract.ts';
import type { EngineNotice } from '../../src/shared/engine.ts';
import type { JobEvent } from '../../src/shared/jobs.ts';
import type { Result } from '../../src/shared/errors.ts';
import type { FromEngine } from '../../src/main/electron/engine-messages.ts';
import { EngineRelay, type SpawnEngine } from '../../src/main/electron/engine-relay.ts';
import { solidPng } from '../helpers/images.ts';
import { REPO, tmpDir } from '../helpers/env.ts';

const ENGINE = path.join(REPO, 'test', 'helpers', 'engine-child.ts');

interface Harness {
  relay: EngineRelay;
  events: JobEvent[];
  children: ChildProcess[];
  notice(): Promise<EngineNotice>;
  event(pred: (e: JobEvent) => boolean): Promise<JobEvent>;
}

function harness(
  env: Record<string, string>,
  options: { backoffMs?: number[]; maxRestarts?: number; windowMs?: number } = {},
): Harness {
  const events: JobEvent[] = [];
  const notices: EngineNotice[] = [];
  const waiting: (() => void)[] = [];
  const wake = (): void => {
    for (const w of waiting.splice(0)) w();
  };
  const children: ChildProcess[] = [];
  const dataDir = tmpDir('fsl-relay-data-');
  const spawn: SpawnEngine = (listeners) => {
    const child = fork(ENGINE, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, FEWSHOT_DATA_DIR: dataDir, ...env },
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    children.push(child);
    child.on('message', (m) => listeners.onMessage(m as FromEngine));
    child.on('exit', (code, signal) => listeners.onExit(signal ? `signal ${signal}` : `exit code ${code}`));
    child.on('error', () => undefined);
    return {
      postMessage: (m) => {
        if (child.connected) child.send(m, () => undefined);
      },
      kill: () => child.kill(),
    };
  };
  const relay = new EngineRelay({
    spawn,
    onEvent: (e) => {
      events.push(e);
      wake();
    },
    onNotice: (n) => {
      notices.push(n);
      wake();
    },
    ...options,
  });
  let seen = 0;
  const until = async <T>(get: () => T | undefined): Promise<T> => {
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      await new Promise<void>((r) => waiting.push(r));
    }
  };
  return {
    relay,
    events,
    children,
    notice: () => until(() => (notices.length > seen ? notices[seen++] : undefined)),
    event: (pred) => until(() => events.find(pred)),
  };
}

function value<T>(r: Result<unknown>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value as T;
}

test(
  'an engine killed mid-request: the request fails with ENGINE_STOPPED at once, the job is interrupted, the restarted engine answers',
  { timeout: 120_000 },
  async () => {
    const dir = tmpDir('fsl-relay-');
    const file = path.join(dir, 'lab.fsl');
    const images = path.join(dir, 'images');
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(images, cls), { recursive: true });
      for (let i = 0; i < 100; i++)
        fs.writeFileSync(
          path.join(images, cls, `${i}.png`),
          await solidPng(96, 96, [i * 2, 80, cls === 'a' ? 0 : 250]),
        );
    }
    const h = harness({}, { backoffMs: [50] });
    h.relay.start();
    try {
      value(await h.relay.invoke('project.create', { file }));
      const { jobId } = value<{ jobId: string }>(await h.relay.invoke('dataset.import', { folder: images }));
      await h.event((e) => e.jobId === jobId && e.type === 'progress');
      assert.equal(
        h.events.some((e) => e.jobId === jobId && e.type !== 'progress'),
        false,
        'the import is still running',
      );

      const waiting = h.relay.invoke('test.hang', {});
      const killedAt = Date.now();
      h.children[0]?.kill('SIGKILL');
      const failed = await waiting;
      assert.ok(Date.now() - killedAt < 1000, 'answered within a second');
      assert.equal(failed.ok, false);
      assert.equal(!failed.ok && failed.error.code, 'ENGINE_STOPPED');
      assert.match(!failed.ok ? failed.error.message : '', /^The engine stopped \(signal SIGKILL\)/);

      const notice = await h.notice();
      assert.equal(notice.state, 'restarted');
      assert.equal(notice.reason, 'signal SIGKILL');
      assert.deepEqual(notice.interrupted, [jobId]);
      assert.equal(notice.state === 'restarted' && notice.reopened, file);
      assert.equal(
        notice.message,
        'The engine stopped (signal SIGKILL) and was restarted; the running job was interrupted — you can start it again.',
      );
      assert.equal(h.relay.state, 'running');
      assert.equal(h.relay.starts, 2);

      // The next requests are answered by the new engine, on the same project.
      const current = value<{ file: string } | null>(await h.relay.invoke('project.current', {}));
      assert.equal(current?.file, file);
      const { jobs } = value<{ jobs: JobSummary[] }>(await h.relay.invoke('jobs.list', {}));
      const job = jobs.find((j) => j.id === jobId);
      assert.equal(job?.status, 'failed', 'the job is marked interrupted');
      assert.match(job?.error?.message ?? '', /^Interrupted/);
      const audit = value<{ entries: AuditEntryView[] }>(await h.relay.invoke('audit.list', { limit: 50 }));
      const takeover = audit.entries.find((e) => e.action === 'project.lock.takeover');
      assert.equal(takeover?.details.pid, h.children[0]?.pid, "the dead engine's lock was taken over");

      // And a new job runs to its end.
      const again = value<{ jobId: string }>(await h.relay.invoke('dataset.import', { folder: images }));
      const end = await h.event((e) => e.jobId === again.jobId && e.type !== 'progress');
      assert.equal(end.type, 'done');
    } finally {
      await h.relay.close();
    }
    assert.equal(h.relay.state, 'closed');
    assert.equal(h.children[1]?.exitCode, 0, 'the engine closed by itself when asked');
    assert.ok(!fs.existsSync(`${file}.lock`), 'and removed the project lock on its way out');
    const closed = await h.relay.invoke('project.current', {});
    assert.equal(!closed.ok && closed.error.code, 'ENGINE_STOPPED');
  },
);

test(
  'a crash loop stops after the allowed restarts, with a clear state and message',
  { timeout: 60_000 },
  async () => {
    const h = harness(
      { FEWSHOT_TEST_ENGINE_EXIT: '70' },
      { backoffMs: [10, 20], maxRestarts: 2, windowMs: 60_000 },
    );
    h.relay.start();
    const first = await h.relay.invoke('project.current', {});
    assert.equal(!first.ok && first.error.code, 'ENGINE_STOPPED');
    assert.match(!first.ok ? first.error.message : '', /exit code 70/);
    const notice = await h.notice();
    assert.equal(notice.state, 'stopped');
    assert.equal(
      notice.message,
      'The engine stopped 3 times within 1 min (last: exit code 70) and is no longer restarted. ' +
        'Restart FewShot Lab to go on; if it happens again, the last image or action is the likely cause.',
    );
    assert.equal(h.relay.state, 'stopped');
    assert.equal(h.relay.starts, 3, 'the first start and two restarts');
    const later = await h.relay.invoke('project.current', {});
    assert.equal(!later.ok && later.error.code, 'ENGINE_STOPPED');
    assert.match(!later.ok ? later.error.message : '', /no longer restarted; restart FewShot Lab/);
    assert.equal(await h.relay.thumbnail(1, 64), null);
    await h.relay.close();
  },
);
