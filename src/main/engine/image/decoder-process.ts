// How the decode pool starts a decoder process, behind one small interface chosen once per process:
// under plain Node (the command line, the browser host, tests) a child process with an IPC channel;
// under Electron, a utility process started by the shell. The packaged app turns the RunAsNode fuse off,
// so the Electron binary can no longer be forked as Node, and only the main process may start utility
// processes: the engine (and the job worker threads inside it, where the pool runs) asks the shell for
// one through decoder-broker.ts, and talks to it over a BroadcastChannel of its own.

import { fork } from 'node:child_process';
import crypto from 'node:crypto';
import { BroadcastChannel, threadId } from 'node:worker_threads';
import type { DecodeReply, DecodeRequest } from './decode-task.ts';

export type FromDecoder = DecodeReply | { ready: true };

export interface DecoderEvents {
  message(message: FromDecoder): void;
  /** Called once, however the process ended (or failed to start); `stderr` is its last words. */
  exit(code: number | null, signal: NodeJS.Signals | null, stderr: string): void;
}

export interface DecoderProcess {
  send(request: DecodeRequest, done: (error: Error | null) => void): void;
  /** While a task waits on it, the decoder keeps this process alive; idle, it does not. */
  ref(): void;
  unref(): void;
  /** Stops it at once (a hung or unwanted decoder); `exit` follows. */
  kill(): void;
  readonly exited: boolean;
}

export type DecoderLauncher = (script: string, events: DecoderEvents) => DecoderProcess;

const STDERR_TAIL = 2000;

/** A plain Node child process (`fork`), TypeScript entries through tsx. */
export function forkDecoder(script: string, events: DecoderEvents): DecoderProcess {
  const ts = script.endsWith('.ts');
  const child = fork(script, [], {
    execArgv: ts ? ['--import', import.meta.resolve('tsx')] : [],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  let ended = false;
  const end = (code: number | null, signal: NodeJS.Signals | null): void => {
    if (ended) return;
    ended = true;
    events.exit(code, signal, stderr);
  };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_TAIL);
  });
  child.on('message', (m: FromDecoder) => events.message(m));
  child.on('exit', (code, signal) => end(code, signal));
  child.on('error', () => end(null, null));
  return {
    send: (request, done) => child.send(request, (err) => done(err ?? null)),
    ref: () => child.channel?.ref(),
    unref: () => child.channel?.unref(),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    get exited() {
      return ended || child.exitCode !== null || child.signalCode !== null;
    },
  };
}

/** The channel on which any thread of the engine asks the shell's broker for a decoder. */
export const DECODER_REQUESTS = 'fewshot.decoders';

/** What goes over a decoder's own BroadcastChannel, between a pool and the broker. */
export type PoolToBroker = { send: DecodeRequest } | { kill: true };
export type BrokerToPool =
  { attached: true } | { message: FromDecoder } | { exit: number | null; stderr: string };
export interface DecoderOpen {
  /** The name of the decoder's own BroadcastChannel. */
  open: string;
}

type Channel = BroadcastChannel & { ref(): void; unref(): void };

/** How long a broker may take to hand over a decoder before the start counts as failed. */
const ATTACH_TIMEOUT_MS = 15_000;

/**
 * A utility process the shell starts for this engine (see decoder-broker.ts); no electron import. The
 * shell runs its own decode worker: `script` (another entry, for tests under Node) is not passed on.
 */
export function brokeredDecoder(_script: string, events: DecoderEvents): DecoderProcess {
  const name = `${DECODER_REQUESTS}.${process.pid}.${threadId}.${crypto.randomUUID()}`;
  const channel = new BroadcastChannel(name) as Channel;
  let attached = false;
  let ended = false;
  let held: { request: DecodeRequest; done: (error: Error | null) => void }[] = [];
  const end = (code: number | null, stderr: string): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    channel.close();
    for (const h of held.splice(0)) h.done(new Error('The decoder stopped.'));
    events.exit(code, null, stderr);
  };
  const timer = setTimeout(() => end(null, 'No decoder was handed over by the shell.'), ATTACH_TIMEOUT_MS);
  timer.unref();
  channel.onmessage = (e) => {
    const m = e.data as BrokerToPool;
    if ('attached' in m) {
      attached = true;
      clearTimeout(timer);
      for (const h of held.splice(0)) post(h.request, h.done);
      held = [];
    } else if ('message' in m) events.message(m.message);
    else end(m.exit, m.stderr);
  };
  const post = (request: DecodeRequest, done: (error: Error | null) => void): void => {
    try {
      channel.postMessage({ send: request } satisfies PoolToBroker);
      done(null);
    } catch (e) {
      done(e as Error);
    }
  };
  const ask = new BroadcastChannel(DECODER_REQUESTS);
  ask.postMessage({ open: name } satisfies DecoderOpen);
  ask.close();
  return {
    send: (request, done) => {
      if (ended) done(new Error('The decoder stopped.'));
      else if (attached) post(request, done);
      else held.push({ request, done });
    },
    ref: () => channel.ref(),
    unref: () => channel.unref(),
    kill: () => {
      if (!ended) channel.postMessage({ kill: true } satisfies PoolToBroker);
    },
    get exited() {
      return ended;
    },
  };
}

/** Chosen once: Electron's processes carry `process.versions.electron`, plain Node does not. */
export function decoderLauncher(): DecoderLauncher {
  return process.versions.electron ? brokeredDecoder : forkDecoder;
}
