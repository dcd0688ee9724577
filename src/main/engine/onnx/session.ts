// onnxruntime-node sessions: execution providers chosen per platform and device (providers.ts), an
// explicit thread count, a queue per session because a session must not run two calls at once, and on
// request a record of which provider ran each node of the first run (placement.ts).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel } from './model.ts';
import { profileDir, readPlacement, removeProfileDir, type Placement } from './placement.ts';
import {
  deviceLabel,
  ortMessage,
  resolveDevice,
  type Device,
  type DeviceChoice,
  type ExecutionProvider,
} from './providers.ts';

export {
  deviceLabel,
  preferredProviders,
  probeProvider,
  providerTable,
  resolveDevice,
  webgpuIsSoftware,
  type Device,
  type DeviceChoice,
  type ExecutionProvider,
  type ProbeResult,
} from './providers.ts';
export type { Placement } from './placement.ts';

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

export interface SessionOptions {
  threads?: number;
  device?: Device;
  /** Profile the first run to learn which provider ran each node; read it with placement(). */
  recordPlacement?: boolean;
  /**
   * ORT's memory pattern plans buffers per input shape and keeps them; training graphs with a variable
   * batch hold twice the memory with it and run no faster (full ResNet18: 2.1 → 1.3 GiB), so they turn it off.
   */
  memoryPattern?: boolean;
}

/**
 * WebGPU's MaxPool has no Indices output and fails at run time instead of falling back to the CPU, so
 * such nodes are pinned to the CPU by name (unnamed ones are named first, which means re-encoding).
 */
function pinForWebgpu(model: Uint8Array | string): { model: Uint8Array | string; cpuNodes: string[] } {
  const decoded = decodeModel(typeof model === 'string' ? fs.readFileSync(model) : model);
  const pinned = decoded.graph.nodes.filter(
    (n) => n.opType === 'MaxPool' && n.domain === '' && (n.outputs[1] ?? '') !== '',
  );
  if (pinned.length === 0) return { model, cpuNodes: [] };
  const unnamed = pinned.filter((n) => n.name === '');
  unnamed.forEach((n, i) => (n.name = `fewshot_maxpool_indices_${i}`));
  return { model: unnamed.length ? encodeModel(decoded) : model, cpuNodes: pinned.map((n) => n.name) };
}

export class QueuedSession {
  private tail: Promise<unknown> = Promise.resolve();
  /** Resolves once the first run's profile has been read; never rejects (an Error is a value here). */
  private readonly placed: Promise<Placement | Error> | null = null;
  private settle: (p: Placement | Error) => void = () => undefined;

  private constructor(
    readonly session: ort.InferenceSession,
    /** The providers handed to ONNX Runtime, best first (kept for existing records: "webgpu+cpu"). */
    readonly providers: ExecutionProvider[],
    /** What was asked for, what runs the graph, and why, if that is not the first GPU candidate. */
    readonly device: DeviceChoice,
    private profile: string | null,
  ) {
    if (profile) this.placed = new Promise((resolve) => (this.settle = resolve));
  }

  static async create(model: Uint8Array | string, options: SessionOptions = {}): Promise<QueuedSession> {
    const threads = options.threads ?? defaultThreads();
    const choice = await resolveDevice(options.device ?? 'auto');
    const failures: string[] = [];
    let lastError: unknown;
    // The probe said the provider works; this model may still not load there, so step down to the CPU.
    for (let i = 0; i < choice.providers.length; i++) {
      const eps = choice.providers.slice(i);
      const first = eps[0] ?? 'cpu';
      const dir = options.recordPlacement ? profileDir() : null;
      try {
        const pin = first === 'webgpu' ? pinForWebgpu(model) : { model, cpuNodes: [] };
        const common: ort.InferenceSession.SessionOptions = {
          // An empty forceCpuNodeNames is an error in ORT ("key/value cannot be empty").
          executionProviders: eps.map((ep) =>
            ep === 'webgpu' && pin.cpuNodes.length ? { name: 'webgpu', forceCpuNodeNames: pin.cpuNodes } : ep,
          ),
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          ...(options.memoryPattern === false ? { enableMemPattern: false } : {}),
          ...(dir ? { enableProfiling: true, profileFilePrefix: path.join(dir, 'ort') } : {}),
        };
        const session =
          typeof pin.model === 'string'
            ? await ort.InferenceSession.create(pin.model, common)
            : await ort.InferenceSession.create(pin.model, common);
        const device: DeviceChoice =
          failures.length === 0
            ? choice
            : {
                ...choice,
                providers: eps,
                provider: first,
                software: choice.software && first === 'webgpu',
                note: [choice.note, ...failures].filter((n) => n !== null).join('; '),
              };
        return new QueuedSession(session, eps, device, dir);
      } catch (e) {
        if (dir) removeProfileDir(dir);
        failures.push(`${first} could not load the model: ${ortMessage(e)}`);
        lastError = e;
      }
    }
    throw lastError;
  }

  /** Runs one call after every earlier call on this session has finished. */
  run(feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const next = this.tail.then(async () => {
      try {
        return await this.session.run(feeds);
      } finally {
        this.finishProfile();
      }
    });
    this.tail = next.catch(() => undefined);
    return next;
  }

  /**
   * Which provider ran the first run's nodes and how many fell back to the CPU. Resolves after the
   * first run (a failed one included: its profile still says where nodes were placed); needs a session
   * created with `recordPlacement: true`.
   */
  async placement(): Promise<Placement> {
    if (!this.placed) throw new Error('placement() needs a session created with { recordPlacement: true }.');
    const p = await this.placed;
    if (p instanceof Error) throw p;
    return p;
  }

  /** Ends profiling after the first run (later runs are not profiled) and deletes the profile file. */
  private finishProfile(): void {
    const dir = this.profile;
    if (!dir) return;
    this.profile = null;
    try {
      this.session.endProfiling();
      this.settle(readPlacement(dir, this.device.provider));
    } catch (e) {
      this.settle(e instanceof Error ? e : new Error(String(e)));
    } finally {
      removeProfileDir(dir);
    }
  }

  /** "CPU", "WebGPU (software adapter)", "CPU (GPU asked for: …)": for logs and model records. */
  get deviceLabel(): string {
    return deviceLabel(this.device);
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
    if (this.profile) {
      // ORT writes the profile on release when it was never ended.
      removeProfileDir(this.profile);
      this.profile = null;
      this.settle(new Error('The session was released before its first run.'));
    }
  }
}

export { ort };
