// Where ONNX Runtime ran each node: the first run of a session is profiled, and the profile's node
// events name the provider of every kernel. ORT exposes no other record of placement in Node (verbose
// logging goes to the native stdout), so this is the reliable way to count CPU fallbacks.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionProvider } from './providers.ts';

export interface Placement {
  /** The provider asked to run the graph. */
  provider: ExecutionProvider;
  /**
   * Kernels the first run executed: ORT's graph after its fusions and layout changes (WebGPU adds
   * Transposes to NHWC around convolutions), host↔device copies excluded.
   */
  nodes: number;
  /** Of those, how many ran on the CPU although a GPU provider was asked for (0 for 'cpu'). */
  cpuNodes: number;
  /** Their op types, unique and sorted. */
  cpuOps: string[];
  /** Host↔device copies ORT inserted around the CPU nodes. */
  copies: number;
}

interface ProfileEvent {
  cat?: unknown;
  name?: unknown;
  args?: { op_name?: unknown; provider?: unknown };
}

/** A folder under the system temp dir for one session's profile; ORT names the file itself. */
export function profileDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'fewshot-ort-profile-'));
}

export function removeProfileDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Reads the profile ORT wrote into `dir` (one per session) and counts kernels by provider. */
export function readPlacement(dir: string, provider: ExecutionProvider): Placement {
  const kernels = new Map<string, { op: string; on: string }>();
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as ProfileEvent[];
    for (const e of events) {
      if (e.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith('_kernel_time')) continue;
      // One event per kernel per run; keyed by node name so a node inside a loop counts once.
      const { op_name: op, provider: on } = e.args ?? {};
      kernels.set(e.name, { op: typeof op === 'string' ? op : '?', on: typeof on === 'string' ? on : '?' });
    }
  }
  let nodes = 0;
  let copies = 0;
  let cpuNodes = 0;
  const cpuOps = new Set<string>();
  for (const { op, on } of kernels.values()) {
    if (op === 'MemcpyFromHost' || op === 'MemcpyToHost') {
      copies++;
      continue;
    }
    nodes++;
    if (provider !== 'cpu' && on === 'CPUExecutionProvider') {
      cpuNodes++;
      cpuOps.add(op);
    }
  }
  return { provider, nodes, cpuNodes, cpuOps: [...cpuOps].sort(), copies };
}
