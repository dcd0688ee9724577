// A small pool of child processes that decode untrusted files: validation for the import, decoding and
// cropping for batch classification. libvips and the DICOM parser are native or hand-written decoders fed
// untrusted bytes: a segfault, an abort or an endless loop on one hostile file must fail that file — with
// a typed reason — and never the import, the batch or the app. How a decoder process is started (a Node
// child process, or an Electron utility process) is decoder-process.ts's business.

import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FewShotError } from '../../../shared/errors.ts';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { ViewSpec } from '../../../shared/tta.ts';
import type { HighBitDepth } from '../../../shared/domain.ts';
import { ImageError } from './decode-error.ts';
import type { DecodeReply, DecodeRequest } from './decode-task.ts';
import type { DecodeLimits, RgbImage } from './decode.ts';
import {
  decoderLauncher,
  type DecoderLauncher,
  type DecoderProcess,
  type FromDecoder,
} from './decoder-process.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ValidateReply = Extract<DecodeReply, { op: 'validate' }>;
type Failure = Extract<DecodeReply, { ok: false }>;

export interface DecodePoolOptions {
  /** Child processes (default: up to two, one per core). */
  size?: number;
  /** A file taking longer than this is abandoned and its process replaced (default 60 s). */
  timeoutMs?: number;
  /** The worker entry; the default is the app's own decode worker. */
  workerScript?: string;
  /** How decoder processes start; the default is chosen for this runtime (see decoder-process.ts). */
  launcher?: DecoderLauncher;
}

interface Task {
  req: DecodeRequest;
  resolve: (r: DecodeReply) => void;
  reject: (e: Error) => void;
}

interface Worker {
  child: DecoderProcess;
  task: Task | null;
  /** The process said it is listening: an exit before that is a failed start, not a hostile file. */
  ready: boolean;
  timer: NodeJS.Timeout | null;
}

/** The decode worker beside this module: TypeScript sources in development, the bundle when built. */
export function defaultWorkerScript(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), here.endsWith('.ts') ? 'decode-worker.ts' : 'decode-worker.js');
}

export class DecodePool {
  private readonly size: number;
  private readonly timeoutMs: number;
  private readonly script: string;
  private readonly launch: DecoderLauncher;
  private readonly workers = new Set<Worker>();
  private readonly queue: Task[] = [];
  private nextId = 1;
  private failedStarts = 0;
  private closed = false;
  /** Files whose decoder process died or hung; reported by the robustness bench. */
  crashes = 0;
  timeouts = 0;

  constructor(options: DecodePoolOptions = {}) {
    this.size = Math.max(1, options.size ?? Math.min(2, os.availableParallelism()));
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.script = options.workerScript ?? defaultWorkerScript();
    this.launch = options.launcher ?? decoderLauncher();
  }

  /** Validates one file's bytes in a child process; resolves with the image or a typed rejection. */
  async validate(
    bytes: Uint8Array,
    limits: DecodeLimits,
    frames: 'first' | 'each' = 'first',
  ): Promise<ValidateReply | Failure> {
    const r = await this.submit({ op: 'validate', bytes, limits, frames });
    if (r.ok && r.op !== 'validate')
      throw new FewShotError('INTERNAL', 'The decoder answered another request.');
    return r;
  }

  /** Decodes and crops one file for a model in a child process; a failure throws its typed ImageError. */
  async crop(
    bytes: Uint8Array,
    spec: PreprocessSpec,
    limits: DecodeLimits,
    highBitDepth: HighBitDepth,
  ): Promise<RgbImage> {
    const r = await this.submit({ op: 'crop', bytes, limits, spec, highBitDepth });
    if (!r.ok) throw new ImageError(r.code, r.message);
    if (r.op !== 'crop') throw new FewShotError('INTERNAL', 'The decoder answered another request.');
    return r.rgb;
  }

  /** Decodes one file into several views (test-time augmentation) in a child process. */
  async cropViews(
    bytes: Uint8Array,
    spec: PreprocessSpec,
    limits: DecodeLimits,
    highBitDepth: HighBitDepth,
    views: ViewSpec[],
  ): Promise<RgbImage[]> {
    const r = await this.submit({ op: 'crop', bytes, limits, spec, highBitDepth, views });
    if (!r.ok) throw new ImageError(r.code, r.message);
    if (r.op !== 'crop') throw new FewShotError('INTERNAL', 'The decoder answered another request.');
    return r.views ?? [r.rgb];
  }

  private submit(req: DistributiveOmit<DecodeRequest, 'id'>): Promise<DecodeReply> {
    if (this.closed) return Promise.reject(new FewShotError('INTERNAL', 'The decode pool is closed.'));
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { ...req, id: this.nextId++ }, resolve, reject });
      this.dispatch();
    });
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) this.stop(w);
    this.workers.clear();
    for (const t of this.queue.splice(0))
      t.reject(new FewShotError('CANCELLED', 'The decode pool was closed.'));
  }

  private dispatch(): void {
    while (this.queue.length) {
      let idle = [...this.workers].find((w) => !w.task);
      if (!idle && this.workers.size < this.size) idle = this.spawn();
      if (!idle) return;
      const task = this.queue.shift() as Task;
      this.run(idle, task);
    }
  }

  private spawn(): Worker {
    // `child` is set just below; the launcher's events come later, never during the call.
    const w = { task: null, ready: false, timer: null } as Omit<Worker, 'child'> as Worker;
    w.child = this.launch(this.script, {
      message: (msg) => this.onMessage(w, msg),
      exit: (code, signal, stderr) => this.onExit(w, code, signal, stderr),
    });
    this.workers.add(w);
    return w;
  }

  private onMessage(w: Worker, msg: FromDecoder): void {
    if ('ready' in msg) {
      w.ready = true;
      this.failedStarts = 0;
      return;
    }
    const task = w.task;
    if (task && msg.id === task.req.id) this.finish(w, msg);
  }

  private run(w: Worker, task: Task): void {
    w.task = task;
    w.child.ref();
    w.timer = setTimeout(() => {
      this.timeouts++;
      const t = w.task;
      w.task = null;
      this.retire(w);
      t?.resolve({
        id: task.req.id,
        ok: false,
        code: 'DECODE_TIMEOUT',
        message: `Decoding took longer than ${Math.round(this.timeoutMs / 1000)} s and was stopped.`,
      });
      this.dispatch();
    }, this.timeoutMs);
    w.child.send(task.req, (err) => {
      if (err) this.onExit(w, null, null, '');
    });
  }

  private finish(w: Worker, reply: DecodeReply): void {
    const task = w.task;
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    w.task = null;
    w.child.unref();
    task?.resolve(reply);
    this.dispatch();
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null, stderr: string): void {
    if (!this.workers.has(w)) return;
    this.retire(w);
    const task = w.task;
    w.task = null;
    if (!task) return;
    if (!w.ready) {
      // The process died before it could listen: the worker cannot start, which is no file's fault.
      if (++this.failedStarts >= 3) {
        const why = stderr.trim().split('\n').slice(-3).join(' ') || `exit ${code ?? signal}`;
        const err = new FewShotError('INTERNAL', `The image decoder could not start: ${why}`);
        task.reject(err);
        for (const t of this.queue.splice(0)) t.reject(err);
        return;
      }
      this.queue.unshift(task);
      this.dispatch();
      return;
    }
    this.crashes++;
    task.resolve({
      id: task.req.id,
      ok: false,
      code: 'DECODER_CRASHED',
      message: `The image decoder stopped on this file (${signal ?? `exit code ${code}`}); the file was skipped.`,
    });
    this.dispatch();
  }

  private retire(w: Worker): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    this.workers.delete(w);
    this.stop(w);
  }

  private stop(w: Worker): void {
    if (!w.child.exited) w.child.kill();
  }
}
