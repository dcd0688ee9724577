// Which ONNX Runtime execution provider runs a graph: a per-platform table of candidates, a one-off
// probe of each GPU provider in this process, and the rule that 'auto' never settles on a software GPU.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, type OnnxModel } from './model.ts';

export type ExecutionProvider = 'cpu' | 'cuda' | 'dml' | 'webgpu';
export type Device = 'cpu' | 'gpu' | 'auto';

/** GPU providers to try per platform, best first; the CPU provider always comes last. */
const GPU_PROVIDERS: Partial<Record<NodeJS.Platform, readonly ExecutionProvider[]>> = {
  linux: ['cuda', 'webgpu'], // CUDA only where its provider library ships (linux-x64 builds)
  win32: ['dml', 'webgpu'],
  darwin: ['webgpu'], // Metal through Dawn; CoreML is not needed for these small convnets
};

/** The table for a platform, whatever this build ships. */
export function providerTable(platform: NodeJS.Platform = process.platform): ExecutionProvider[] {
  return [...(GPU_PROVIDERS[platform] ?? []), 'cpu'];
}

/** True when a provider's shared library ships beside the binding (ORT lists CUDA even without it). */
function providerLibraryPresent(ep: ExecutionProvider): boolean {
  if (ep !== 'cuda') return true; // CPU, DirectML and WebGPU are part of the binding itself
  try {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    return fs.existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/** Candidate providers for a device on this machine's build, best first, before any probing. */
export function preferredProviders(device: Device = 'auto'): ExecutionProvider[] {
  if (device === 'cpu') return ['cpu'];
  const bundled = new Set(ort.listSupportedBackends().map((b) => b.name));
  return providerTable().filter((ep) => ep === 'cpu' || (bundled.has(ep) && providerLibraryPresent(ep)));
}

/**
 * Whether WebGPU here can only be a software adapter. ORT does not expose Dawn's adapter info, so on
 * Linux this asks the kernel instead: a hardware Vulkan driver needs a device node (a DRM render node,
 * NVIDIA's, or WSL's /dev/dxg), and without one the only adapter Dawn can find is a CPU implementation
 * (Mesa lavapipe, SwiftShader), which runs convnets 10-50x slower than the CPU provider. A render node
 * without a Vulkan driver (virtio-gpu without 3D) would still pass; timing the probe could tell, but a
 * probe small enough to be cheap is dominated by dispatch overhead on real GPUs too. Elsewhere Dawn
 * finds Metal or D3D12 hardware (and Windows tries DirectML first), so the adapter is trusted.
 */
export function webgpuIsSoftware(): boolean {
  if (process.platform !== 'linux') return false;
  const exists = (p: string): boolean => fs.existsSync(p);
  let renderNode = false;
  try {
    renderNode = fs.readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
  } catch {
    // no /dev/dri at all
  }
  return !(renderNode || exists('/dev/nvidia0') || exists('/dev/dxg'));
}

/** Opt-in for 'auto' to use a software WebGPU adapter anyway (CI, or to compare numbers). */
function softwareWebgpuAllowed(): boolean {
  return process.env.FEWSHOT_WEBGPU_SOFTWARE_OK === '1';
}

export interface ProbeResult {
  ok: boolean;
  /** Why the provider cannot be used, from ONNX Runtime's error; null when it can. */
  reason: string | null;
}

/** A 3×3 Conv over a 1×3×8×8 input: small, and supported by every GPU provider. */
function probeModel(): { bytes: Uint8Array; input: Float32Array } {
  const w = Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.sin(i + 1) * 0.5);
  const model: OnnxModel = {
    irVersion: 8,
    opsets: [{ domain: '', version: 17 }],
    producerName: 'fewshot-probe',
    producerVersion: '',
    docString: '',
    metadata: {},
    unknown: [],
    graph: {
      name: 'probe',
      nodes: [
        {
          name: 'conv',
          opType: 'Conv',
          domain: '',
          inputs: ['x', 'w'],
          outputs: ['y'],
          attributes: [{ name: 'pads', type: 'ints', ints: [1, 1, 1, 1] }],
        },
      ],
      initializers: [floatTensor('w', [4, 3, 3, 3], w)],
      inputs: [{ name: 'x', elemType: 1, shape: [1, 3, 8, 8] }],
      outputs: [{ name: 'y', elemType: 1, shape: [1, 4, 8, 8] }],
      valueInfo: [],
      unknown: [],
    },
  };
  return { bytes: encodeModel(model), input: Float32Array.from({ length: 192 }, (_, i) => Math.cos(i)) };
}

async function runProbe(ep: ExecutionProvider): Promise<ProbeResult> {
  const { bytes, input } = probeModel();
  const once = async (eps: ExecutionProvider[]): Promise<Float32Array> => {
    const s = await ort.InferenceSession.create(bytes, { executionProviders: eps, intraOpNumThreads: 1 });
    try {
      const out = await s.run({ x: new ort.Tensor('float32', input, [1, 3, 8, 8]) });
      return out.y?.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  try {
    const [got, want] = [await once([ep]), await once(['cpu'])];
    // A driver that answers but computes garbage is worse than none.
    const off = want.findIndex((v, i) => !(Math.abs(v - (got[i] ?? NaN)) <= 1e-3));
    return off < 0 ? { ok: true, reason: null } : { ok: false, reason: `${ep} gave wrong numbers` };
  } catch (e) {
    return { ok: false, reason: ortMessage(e) };
  }
}

/** ORT's error without its source location and failed-check preamble ("… was false. Failed to …"). */
export function ortMessage(e: unknown): string {
  const text = (e instanceof Error ? e.message : String(e)).trim();
  const lastLine = text.split('\n').pop() ?? text;
  const tail = lastLine.includes(' was false. ') ? lastLine.split(' was false. ').pop() : lastLine;
  return (tail ?? lastLine).replace(/^\/\S+:\d+ /, '').slice(0, 200);
}

const probes = new Map<ExecutionProvider, Promise<ProbeResult>>();

/** Whether a provider can create and run a session here; asked once per process, then remembered. */
export function probeProvider(ep: ExecutionProvider): Promise<ProbeResult> {
  if (ep === 'cpu') return Promise.resolve({ ok: true, reason: null });
  let p = probes.get(ep);
  if (!p) {
    p = runProbe(ep);
    probes.set(ep, p);
  }
  return p;
}

/** What a session was asked for and what it got; worth storing beside anything it computed. */
export interface DeviceChoice {
  requested: Device;
  /** Handed to ONNX Runtime, best first; the CPU provider is last and runs any node the first lacks. */
  providers: ExecutionProvider[];
  /** The provider that runs the graph. */
  provider: ExecutionProvider;
  /** The WebGPU adapter is a CPU implementation (lavapipe): right numbers, slower than 'cpu'. */
  software: boolean;
  /** Why a GPU was passed over, or why a software one is used; null when there is nothing to say. */
  note: string | null;
}

/**
 * Picks the providers for a device. 'cpu' is the CPU provider and nothing else. 'gpu' takes the first
 * GPU provider that probes well, a software adapter included (that is how the GPU path is tested on
 * machines without one), else the CPU with a note saying why. 'auto' does the same but skips software
 * adapters unless FEWSHOT_WEBGPU_SOFTWARE_OK=1, and skips them without probing, so a machine without a
 * GPU pays nothing for asking.
 */
export async function resolveDevice(device: Device = 'auto'): Promise<DeviceChoice> {
  if (device === 'cpu')
    return { requested: device, providers: ['cpu'], provider: 'cpu', software: false, note: null };
  const passedOver: string[] = [];
  for (const ep of preferredProviders(device)) {
    if (ep === 'cpu') break;
    const software = ep === 'webgpu' && webgpuIsSoftware();
    if (software && device === 'auto' && !softwareWebgpuAllowed()) {
      passedOver.push('webgpu: only a software adapter here (no GPU device node)');
      continue;
    }
    const probe = await probeProvider(ep);
    if (!probe.ok) {
      passedOver.push(`${ep}: ${probe.reason ?? 'unavailable'}`);
      continue;
    }
    const notes = [...passedOver];
    if (software) notes.push('webgpu runs on a software adapter (no GPU device node); slower than the CPU');
    return {
      requested: device,
      providers: [ep, 'cpu'],
      provider: ep,
      software,
      note: notes.length ? notes.join('; ') : null,
    };
  }
  return {
    requested: device,
    providers: ['cpu'],
    provider: 'cpu',
    software: false,
    note: passedOver.length
      ? `no usable GPU provider (${passedOver.join('; ')})`
      : `this build has no GPU provider for ${process.platform}-${process.arch}`,
  };
}

const NAMES: Record<ExecutionProvider, string> = {
  cpu: 'CPU',
  cuda: 'CUDA',
  dml: 'DirectML',
  webgpu: 'WebGPU',
};

/** A short human label: "WebGPU (software adapter)", "CPU (GPU asked for: …)". */
export function deviceLabel(choice: DeviceChoice): string {
  const name = NAMES[choice.provider];
  if (choice.software) return `${name} (software adapter)`;
  if (choice.requested === 'gpu' && choice.provider === 'cpu')
    return `${name} (GPU asked for: ${choice.note})`;
  return name;
}
