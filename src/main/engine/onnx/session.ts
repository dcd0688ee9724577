// onnxruntime-node sessions: created with an explicit thread count and execution providers from a
// per-platform table, and a queue per session because a session must not run two calls at once.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

/** True when a GPU provider's shared library ships beside the binding (ORT lists CUDA even without it). */
function providerLibraryPresent(name: 'cuda' | 'dml'): boolean {
  if (name === 'dml') return true; // DirectML is part of the Windows build itself
  try {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    return fs.existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

export type ExecutionProvider = 'cpu' | 'cuda' | 'dml';

/** Providers to try, best first. A provider whose library is absent is skipped by ORT's fallback below. */
export function preferredProviders(device: 'cpu' | 'gpu' | 'auto' = 'auto'): ExecutionProvider[] {
  if (device === 'cpu') return ['cpu'];
  const available = new Set(ort.listSupportedBackends().map((b) => b.name));
  const gpu: ExecutionProvider[] = [];
  if (process.platform === 'linux' && available.has('cuda') && providerLibraryPresent('cuda'))
    gpu.push('cuda');
  if (process.platform === 'win32' && available.has('dml')) gpu.push('dml');
  return [...gpu, 'cpu'];
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

export interface SessionOptions {
  threads?: number;
  device?: 'cpu' | 'gpu' | 'auto';
}

export class QueuedSession {
  private tail: Promise<unknown> = Promise.resolve();
  private constructor(
    readonly session: ort.InferenceSession,
    readonly providers: ExecutionProvider[],
  ) {}

  static async create(model: Uint8Array | string, options: SessionOptions = {}): Promise<QueuedSession> {
    const threads = options.threads ?? defaultThreads();
    const providers = preferredProviders(options.device);
    let lastError: unknown;
    // Try the GPU providers first; fall back to the CPU when their libraries cannot load.
    for (let i = 0; i < providers.length; i++) {
      const eps = providers.slice(i);
      try {
        const common: ort.InferenceSession.SessionOptions = {
          executionProviders: eps,
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
        };
        const session =
          typeof model === 'string'
            ? await ort.InferenceSession.create(model, common)
            : await ort.InferenceSession.create(model, common);
        return new QueuedSession(session, eps);
      } catch (e) {
        lastError = e;
      }
    }
    throw lastError;
  }

  /** Runs one call after every earlier call on this session has finished. */
  run(feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const next = this.tail.then(() => this.session.run(feeds));
    this.tail = next.catch(() => undefined);
    return next;
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async release(): Promise<void> {
    await this.tail;
    await this.session.release();
  }
}

export { ort };
