// Decoders the way the desktop app starts them: a pool in a worker thread asks the engine's broker for
// each decoder over a BroadcastChannel, and the broker gets it from the shell. Here the shell's part
// (which under Electron starts a utility process) forks the same fault-injecting decode worker as a
// child process, so the whole path outside Electron runs for real: a good file decodes, a crashing one
// is DECODER_CRASHED, a hanging one DECODE_TIMEOUT, and no decoder outlives the pool.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { serveDecoderBroker } from '../../src/main/engine/image/decoder-broker.ts';
import type { FromDecoder } from '../../src/main/engine/image/decoder-process.ts';
import { CRASH_MARKER, HANG_MARKER } from '../helpers/decode-faults.ts';
import { REPO } from '../helpers/env.ts';
import { solidPng } from '../helpers/images.ts';

const FAULTY = path.join(REPO, 'test', 'helpers', 'faulty-decode-worker.ts');
const POOL = path.join(REPO, 'test', 'helpers', 'brokered-pool-worker.ts');

test(
  'a pool in a worker thread decodes through brokered decoders; a crash and a hang fail their file only',
  { timeout: 60_000 },
  async () => {
    const children = new Map<number, ChildProcess>();
    let started = 0;
    let gone: () => void = () => undefined;
    const broker = serveDecoderBroker((m) => {
      const d = m.decoder;
      if (d.op === 'kill') {
        children.get(d.id)?.kill('SIGKILL');
        return;
      }
      started++;
      const child = fork(FAULTY, [], {
        execArgv: ['--import', 'tsx'],
        serialization: 'advanced',
        stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      });
      children.set(d.id, child);
      child.on('exit', (code, signal) => {
        children.delete(d.id);
        broker.fromShell(
          {
            decoder: { op: 'exit', id: d.id, code: code ?? (signal === 'SIGSEGV' ? 139 : null), stderr: '' },
          },
          null,
        );
        if (children.size === 0) gone();
      });
      broker.fromShell(
        { decoder: { op: 'opened', id: d.id } },
        {
          post: (request) => child.send(request),
          onMessage: (listener) => child.on('message', (msg) => listener(msg as FromDecoder)),
          close: () => {
            if (child.connected) child.disconnect();
          },
        },
      );
    });

    const files: [string, Uint8Array][] = [
      ['first.png', await solidPng(12, 10)],
      ['crashes.png', Buffer.concat([await solidPng(9, 9), Buffer.from(CRASH_MARKER)])],
      ['hangs.png', Buffer.concat([await solidPng(8, 8), Buffer.from(HANG_MARKER)])],
      ['last.png', await solidPng(7, 5)],
    ];
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(new URL(`file://${POOL}`).href)}); })`;
    const worker = new Worker(code, { eval: true, workerData: { files } });
    const report = await new Promise<{ results: Record<string, string>; crashes: number; timeouts: number }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    await worker.terminate();
    assert.equal(report.results['first.png'], 'ok 12x10');
    assert.equal(report.results['last.png'], 'ok 7x5');
    assert.match(
      report.results['crashes.png'] ?? '',
      /^DECODER_CRASHED: The image decoder stopped on this file/,
    );
    assert.match(report.results['hangs.png'] ?? '', /^DECODE_TIMEOUT: /);
    assert.equal(report.crashes, 1);
    assert.equal(report.timeouts, 1);
    assert.ok(started >= 3, 'the crashed and the hung decoders were replaced');
    // The pool closed: every decoder it had is stopped.
    if (children.size) await new Promise<void>((r) => (gone = r));
    assert.equal(children.size, 0);
    broker.close();
  },
);
