// The relay between the window and the engine's process. Requests and replies go by id; job events pass
// through. When the engine dies (a native crash in a decoder or the runtime, any signal or exit code),
// every request still waiting is answered at once with ENGINE_STOPPED, the engine is started again after
// a back-off, the project it had open is opened again there — which marks the jobs that were running as
// interrupted and takes over the dead process's write lock, both in the audit trail — and the window is
// told. A crash loop stops after a few restarts and says so. No electron import: the shell hands it a
// way to start the engine, and the tests a real child process.

import path from 'node:path';
import type { EngineNotice } from '../../shared/engine.ts';
import type { ErrorData, Result } from '../../shared/errors.ts';
import type { JobEvent } from '../../shared/jobs.ts';
import type { FromEngine, ToEngine } from './engine-messages.ts';

/** A started engine: what the relay needs of Electron's UtilityProcess or a Node ChildProcess. */
export interface EngineProcess {
  postMessage(message: ToEngine): void;
  kill(): void;
}

export interface EngineListeners {
  onMessage(message: FromEngine): void;
  /** The process is gone; `reason` says how ("signal SIGKILL", "exit code 134"). */
  onExit(reason: string): void;
}

export type SpawnEngine = (listeners: EngineListeners) => EngineProcess;

export interface EngineRelayOptions {
  spawn: SpawnEngine;
  onEvent: (event: JobEvent) => void;
  onNotice: (notice: EngineNotice) => void;
  /** Delay before each restart in a row of crashes (the last repeats). Default 0.5 s, 2 s, 8 s. */
  backoffMs?: readonly number[];
  /** Crashes within `windowMs` after which the relay stops restarting (default 3 in 2 minutes). */
  maxRestarts?: number;
  windowMs?: number;
}

export type EngineState = 'running' | 'restarting' | 'stopped' | 'closed';

type Reply =
  | { kind: 'invoke'; resolve: (r: Result<unknown>) => void }
  | { kind: 'thumbnail'; resolve: (b64: string | null) => void };

export class EngineRelay {
  private child: EngineProcess | null = null;
  /** Bumped at every start, so a late message or exit of a dead engine is ignored. */
  private generation = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Reply>();
  /** Requests that arrived while the engine was down or reopening its project, sent once it is up. */
  private queue: { build: (id: number) => ToEngine; reply: Reply }[] = [];
  /** Set while a restarted engine opens the project again: what the window will be told. */
  private recovering: { interrupted: string[] } | null = null;
  private readonly running = new Set<string>();
  private openFile: string | null = null;
  private crashes: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** The engine asked to close, until it has exited. */
  private exiting: { generation: number; done: () => void } | null = null;
  private lastReason = '';
  private readonly backoff: readonly number[];
  private readonly maxRestarts: number;
  private readonly windowMs: number;
  state: EngineState = 'closed';
  /** Engines started so far, the first one included. */
  starts = 0;

  constructor(private readonly options: EngineRelayOptions) {
    this.backoff = options.backoffMs?.length ? options.backoffMs : [500, 2000, 8000];
    this.maxRestarts = options.maxRestarts ?? 3;
    this.windowMs = options.windowMs ?? 120_000;
  }

  start(): void {
    if (this.state !== 'closed' || this.child) return;
    this.launch(null);
  }

  /** A contract call; resolves with the engine's answer, or ENGINE_STOPPED if it dies first. */
  invoke(channel: string, input: unknown): Promise<Result<unknown>> {
    if (this.state === 'stopped' || this.state === 'closed')
      return Promise.resolve({ ok: false, error: this.stoppedError() });
    return new Promise((resolve) => {
      this.send((id) => ({ id, channel, input }), { kind: 'invoke', resolve });
    });
  }

  /** A thumbnail as base64 JPEG, or null (no such image, or the engine stopped). */
  thumbnail(imageId: number, size: number): Promise<string | null> {
    if (this.state === 'stopped' || this.state === 'closed') return Promise.resolve(null);
    return new Promise((resolve) => {
      this.send((id) => ({ id, thumbnail: { imageId, size } }), { kind: 'thumbnail', resolve });
    });
  }

  /**
   * The app is closing: answers what still waits, asks the engine to close its project (which removes
   * the write lock) and stops it after `graceMs` if it has not exited by then. Resolves once it is gone.
   */
  close(graceMs = 3000): Promise<void> {
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    const generation = this.generation;
    this.child = null;
    this.generation++;
    this.recovering = null;
    const closing: ErrorData = { code: 'ENGINE_STOPPED', message: 'The app is closing.' };
    this.failPending(closing);
    this.failQueued(closing);
    if (!child) return Promise.resolve();
    return new Promise((resolve) => {
      const hard = setTimeout(() => child.kill(), graceMs);
      const giveUp = setTimeout(resolve, graceMs * 2);
      this.exiting = {
        generation,
        done: () => {
          clearTimeout(hard);
          clearTimeout(giveUp);
          resolve();
        },
      };
      child.postMessage({ close: true });
    });
  }

  private send(build: (id: number) => ToEngine, reply: Reply): void {
    if (this.child && !this.recovering) this.post(this.child, build, reply);
    else this.queue.push({ build, reply });
  }

  private post(child: EngineProcess, build: (id: number) => ToEngine, reply: Reply): void {
    const id = this.nextId++;
    this.pending.set(id, reply);
    child.postMessage(build(id));
  }

  private launch(after: { reason: string; interrupted: string[] } | null): void {
    const generation = ++this.generation;
    this.starts++;
    this.state = 'running';
    let child: EngineProcess;
    try {
      child = this.options.spawn({
        onMessage: (m) => {
          if (generation === this.generation) this.onMessage(m);
        },
        onExit: (reason) => {
          if (generation === this.generation) this.onExit(reason);
          else if (this.exiting?.generation === generation) this.exiting.done();
        },
      });
    } catch (e) {
      // Counted as a crash, so an engine that cannot start at all ends in the stopped state.
      queueMicrotask(() => this.onExit(`it could not start: ${(e as Error).message}`));
      return;
    }
    this.child = child;
    if (!after) return this.flush();
    // The project goes first, so the window's next requests find it open; with none, a first answer
    // shows the new engine is up. Only then is the window told.
    const file = this.openFile;
    this.recovering = { interrupted: after.interrupted };
    const probe = file
      ? { channel: 'project.open', input: { file } }
      : { channel: 'project.current', input: {} };
    this.post(child, (id) => ({ id, ...probe }), {
      kind: 'invoke',
      resolve: (r) => {
        // This engine died too before it answered: the next one will open the project and tell.
        if (generation !== this.generation) return;
        this.recovering = null;
        const failed = file && !r.ok ? r.error : null;
        if (failed) this.openFile = null;
        this.flush();
        this.notice(after.reason, after.interrupted, file, failed);
      },
    });
  }

  private flush(): void {
    const child = this.child;
    if (!child) return;
    for (const q of this.queue.splice(0)) this.post(child, q.build, q.reply);
  }

  private onMessage(m: FromEngine): void {
    if ('event' in m) {
      const e = m.event;
      if (e.type === 'progress') this.running.add(e.jobId);
      else this.running.delete(e.jobId);
      this.options.onEvent(e);
      return;
    }
    if ('project' in m) {
      this.openFile = m.project;
      return;
    }
    const reply = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (!reply) return;
    if (reply.kind === 'thumbnail') reply.resolve('thumbnail' in m ? m.thumbnail : null);
    else if ('result' in m) {
      const jobId = (m.result.ok ? (m.result.value as { jobId?: unknown } | null) : null)?.jobId;
      if (typeof jobId === 'string') this.running.add(jobId);
      reply.resolve(m.result);
    }
  }

  private onExit(reason: string): void {
    this.child = null;
    this.generation++;
    this.lastReason = reason;
    const interrupted = [...new Set([...(this.recovering?.interrupted ?? []), ...this.running])];
    this.recovering = null;
    this.running.clear();
    this.failPending({
      code: 'ENGINE_STOPPED',
      message: `The engine stopped (${reason}) before it answered; it is being restarted — try again in a moment.`,
    });
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < this.windowMs), now];
    if (this.crashes.length > this.maxRestarts) {
      this.state = 'stopped';
      this.failQueued(this.stoppedError());
      const minutes = Math.max(1, Math.round(this.windowMs / 60_000));
      this.options.onNotice({
        state: 'stopped',
        reason,
        interrupted,
        message:
          `The engine stopped ${this.crashes.length} times within ${minutes} min (last: ${reason}) and is no longer restarted. ` +
          'Restart FewShot Lab to go on; if it happens again, the last image or action is the likely cause.',
      });
      return;
    }
    this.state = 'restarting';
    const delay = this.backoff[Math.min(this.crashes.length, this.backoff.length) - 1] ?? 0;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state === 'restarting') this.launch({ reason, interrupted });
    }, delay);
  }

  private failPending(error: ErrorData): void {
    const replies = [...this.pending.values()];
    this.pending.clear();
    for (const r of replies) {
      if (r.kind === 'thumbnail') r.resolve(null);
      else r.resolve({ ok: false, error });
    }
  }

  /** Requests held for an engine that will not come back get the engine's state as their answer. */
  private failQueued(error: ErrorData): void {
    for (const { reply } of this.queue.splice(0)) {
      if (reply.kind === 'thumbnail') reply.resolve(null);
      else reply.resolve({ ok: false, error });
    }
  }

  private stoppedError(): ErrorData {
    return this.state === 'closed'
      ? { code: 'ENGINE_STOPPED', message: 'The engine is not running.' }
      : {
          code: 'ENGINE_STOPPED',
          message: `The engine kept stopping (last: ${this.lastReason}) and is no longer restarted; restart FewShot Lab.`,
        };
  }

  private notice(reason: string, interrupted: string[], file: string | null, failed: ErrorData | null): void {
    const jobs =
      interrupted.length === 0
        ? ''
        : interrupted.length === 1
          ? '; the running job was interrupted — you can start it again'
          : `; the ${interrupted.length} running jobs were interrupted — you can start them again`;
    const reopen =
      failed && file ? ` ${path.basename(file)} could not be opened again: ${failed.message}` : '';
    this.options.onNotice({
      state: 'restarted',
      reason,
      interrupted,
      reopened: failed ? null : file,
      message: `The engine stopped (${reason}) and was restarted${jobs}.${reopen}`,
    });
  }
}
