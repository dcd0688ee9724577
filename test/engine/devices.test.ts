// Device selection: the per-platform provider table, 'gpu' ending on the CPU with a reason where no
// adapter exists, and, where a WebGPU adapter exists (Mesa lavapipe will do), WebGPU numbers equal the
// CPU's and the placement record counts the nodes that fell back to the CPU.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  encodeModel,
  floatTensor,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../../src/main/engine/onnx/model.ts';
import {
  QueuedSession,
  ort,
  preferredProviders,
  probeProvider,
  providerTable,
  webgpuIsSoftware,
} from '../../src/main/engine/onnx/session.ts';
import { Rng } from '../../src/main/engine/random.ts';

const NO_ADAPTER =
  'no WebGPU adapter here. On Debian bookworm: apt-get install -t bookworm-backports mesa-vulkan-drivers ' +
  '(lavapipe, a CPU Vulkan driver), and set XDG_RUNTIME_DIR (e.g. /tmp) if Dawn still finds none';

const rng = new Rng(11);
const size = (dims: number[]): number => dims.reduce((a, b) => a * b, 1);
const randoms = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * 0.5);
const weight = (name: string, dims: number[]): OnnxTensor => floatTensor(name, dims, randoms(size(dims)));
const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: 'ints', ints: v });
const int = (name: string, i: number): OnnxAttribute => ({ name, type: 'int', i });
function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: OnnxAttribute[] = [],
): OnnxNode {
  return { name: outputs[0] ?? opType, opType, domain: '', inputs, outputs, attributes };
}

interface Input {
  name: string;
  dims: number[];
  int64?: number[];
}

function model(nodes: OnnxNode[], initializers: OnnxTensor[], inputs: Input[], outputs: string[]): OnnxModel {
  return {
    irVersion: 8,
    opsets: [{ domain: '', version: 17 }],
    producerName: 'devices.test',
    producerVersion: '',
    docString: '',
    metadata: {},
    unknown: [],
    graph: {
      name: 'g',
      nodes,
      initializers,
      inputs: inputs.map((i) => ({ name: i.name, elemType: i.int64 ? 7 : 1, shape: i.dims })),
      outputs: outputs.map((o) => ({ name: o, elemType: 1, shape: null })),
      valueInfo: [],
      unknown: [],
    },
  };
}

function feedsOf(inputs: Input[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const i of inputs)
    feeds[i.name] = i.int64
      ? new ort.Tensor('int64', BigInt64Array.from(i.int64, BigInt), i.dims)
      : new ort.Tensor('float32', randoms(size(i.dims)), i.dims);
  return feeds;
}

/** A small convnet; the MaxPool asks for Indices, which WebGPU lacks, so one node must run on the CPU. */
function convNet(): { m: OnnxModel; inputs: Input[]; outputs: string[] } {
  const inputs = [{ name: 'x', dims: [2, 3, 16, 16] }];
  const nodes = [
    node('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], [ints('pads', [1, 1, 1, 1])]),
    node('Relu', ['c1'], ['r1']),
    node('MaxPool', ['r1'], ['p1', 'p1.idx'], [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])]),
    node(
      'Conv',
      ['p1', 'c2.w'],
      ['c2'],
      [int('group', 2), ints('pads', [1, 1, 1, 1]), ints('strides', [2, 2])],
    ),
    node('Relu', ['c2'], ['r2']),
    node('GlobalAveragePool', ['r2'], ['gap']),
    node('Flatten', ['gap'], ['flat']),
    node('Gemm', ['flat', 'fc.w', 'fc.b'], ['logits'], [int('transB', 1)]),
    node('Softmax', ['logits'], ['probs'], [int('axis', 1)]),
  ];
  const inits = [weight('c1.w', [8, 3, 3, 3]), weight('c1.b', [8]), weight('c2.w', [6, 4, 3, 3])];
  inits.push(weight('fc.w', [5, 6]), weight('fc.b', [5]));
  return { m: model(nodes, inits, inputs, ['c2', 'probs']), inputs, outputs: ['c2', 'probs'] };
}

/** The decoder-side ops fine-tuning needs: grouped strided ConvTranspose and an additive scatter. */
function scatterNet(): { m: OnnxModel; inputs: Input[]; outputs: string[] } {
  const idx = Array.from({ length: 3 * 10 }, (_, i) => (i * 7) % 4);
  const inputs = [
    { name: 'x', dims: [1, 4, 5, 5] },
    { name: 'd', dims: [4, 10] },
    { name: 'i', dims: [3, 10], int64: idx },
    { name: 'u', dims: [3, 10] },
  ];
  const nodes = [
    node('ConvTranspose', ['x', 'ct.w', 'ct.b'], ['up'], [int('group', 2), ints('strides', [2, 2])]),
    node('ConvTranspose', ['x', 'ct2.w'], ['up2'], [ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])]),
    node(
      'ScatterElements',
      ['d', 'i', 'u'],
      ['sc'],
      [int('axis', 0), { name: 'reduction', type: 'string', s: 'add' }],
    ),
  ];
  const inits = [weight('ct.w', [4, 3, 3, 3]), weight('ct.b', [6]), weight('ct2.w', [4, 2, 4, 4])];
  return { m: model(nodes, inits, inputs, ['up', 'up2', 'sc']), inputs, outputs: ['up', 'up2', 'sc'] };
}

function maxDiff(a: ort.Tensor | undefined, b: ort.Tensor | undefined): number {
  assert.ok(a && b, 'both sessions return the output');
  assert.deepEqual(a.dims, b.dims);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)));
  return d;
}

function profileDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('fewshot-ort-profile-'));
}

test('the provider table: CUDA then WebGPU on Linux, DirectML then WebGPU on Windows, WebGPU on macOS', () => {
  assert.deepEqual(preferredProviders('cpu'), ['cpu']);
  assert.deepEqual(providerTable('linux'), ['cuda', 'webgpu', 'cpu']);
  assert.deepEqual(providerTable('win32'), ['dml', 'webgpu', 'cpu']);
  assert.deepEqual(providerTable('darwin'), ['webgpu', 'cpu']);
  assert.deepEqual(providerTable('freebsd'), ['cpu']);
  assert.equal(preferredProviders('gpu').at(-1), 'cpu');
});

test("device 'cpu' is the CPU provider alone, as before, and says nothing more", async () => {
  const { m, inputs } = convNet();
  const s = await QueuedSession.create(encodeModel(m), { device: 'cpu', threads: 1, recordPlacement: true });
  assert.deepEqual(s.providers, ['cpu']);
  assert.deepEqual(s.device, {
    requested: 'cpu',
    providers: ['cpu'],
    provider: 'cpu',
    software: false,
    note: null,
  });
  assert.equal(s.deviceLabel, 'CPU');
  await s.run(feedsOf(inputs));
  const p = await s.placement();
  assert.equal(p.provider, 'cpu');
  assert.equal(p.cpuNodes, 0);
  assert.equal(p.copies, 0);
  assert.ok(p.nodes >= 5, `${p.nodes} kernels`);
  await s.release();
});

test("'auto' passes over a software WebGPU adapter unless FEWSHOT_WEBGPU_SOFTWARE_OK=1", async (t) => {
  const cuda = preferredProviders('auto').includes('cuda');
  if (!webgpuIsSoftware() || cuda || process.env.FEWSHOT_WEBGPU_SOFTWARE_OK === '1') {
    t.skip('this machine has a GPU device node or CUDA (or the opt-in is set)');
    return;
  }
  const s = await QueuedSession.create(encodeModel(convNet().m), { device: 'auto', threads: 1 });
  assert.equal(s.device.provider, 'cpu');
  assert.equal(s.deviceLabel, 'CPU', "'auto' on the CPU is not worth a word");
  assert.match(s.device.note ?? '', /software adapter/);
  await s.release();
});

test("'gpu' on a machine without an adapter ends on the CPU and records why", async (t) => {
  if (process.platform !== 'linux' || preferredProviders('gpu').includes('cuda')) {
    t.skip('hiding the GPU through the Vulkan loader only works on Linux without CUDA');
    return;
  }
  // A child process whose Vulkan loader finds no driver at all: Dawn then has no adapter.
  const session = fileURLToPath(new URL('../../src/main/engine/onnx/session.ts', import.meta.url));
  const script = `
    import { QueuedSession } from ${JSON.stringify(session)};
    import { readFileSync } from 'node:fs';
    const out = {};
    for (const device of ['gpu', 'auto']) {
      const s = await QueuedSession.create(readFileSync(process.argv[1]), { device, threads: 1 });
      out[device] = { ...s.device, label: s.deviceLabel };
      await s.release();
    }
    console.log(JSON.stringify(out));`;
  const file = `${os.tmpdir()}/fewshot-devices-${process.pid}.onnx`;
  fs.writeFileSync(file, encodeModel(convNet().m));
  const nowhere = '/nonexistent/fewshot-no-vulkan-driver.json';
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, file],
      {
        env: {
          ...process.env,
          VK_ICD_FILENAMES: nowhere,
          VK_DRIVER_FILES: nowhere,
          FEWSHOT_WEBGPU_SOFTWARE_OK: '1',
        },
      },
    );
    const got = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<
      string,
      { provider: string; providers: string[]; note: string | null; label: string }
    >;
    for (const device of ['gpu', 'auto']) {
      assert.equal(got[device]?.provider, 'cpu', device);
      assert.deepEqual(got[device]?.providers, ['cpu']);
      assert.match(got[device]?.note ?? '', /webgpu: .*adapter/i, device);
    }
    assert.match(got.gpu?.label ?? '', /^CPU \(GPU asked for: /);
    assert.equal(got.auto?.label, 'CPU');
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('on WebGPU a convnet, ConvTranspose and ScatterElements equal the CPU to 1e-4', async (t) => {
  const probe = await probeProvider('webgpu');
  if (!preferredProviders('gpu').includes('webgpu') || !probe.ok) {
    t.skip(`${NO_ADAPTER} (probe: ${probe.reason ?? 'this build has no WebGPU provider'})`);
    return;
  }
  const before = profileDirs();
  for (const { m, inputs, outputs } of [convNet(), scatterNet()]) {
    const bytes = encodeModel(m);
    const feeds = feedsOf(inputs);
    const cpu = await QueuedSession.create(bytes, { device: 'cpu' });
    const gpu = await QueuedSession.create(bytes, { device: 'gpu', recordPlacement: true });
    assert.equal(gpu.device.provider, 'webgpu', gpu.device.note ?? '');
    assert.deepEqual(gpu.providers, ['webgpu', 'cpu']);
    assert.equal(gpu.device.software, webgpuIsSoftware());
    const [want, got] = [await cpu.run(feeds), await gpu.run(feeds)];
    for (const o of outputs) {
      const d = maxDiff(want[o], got[o]);
      assert.ok(d <= 1e-4, `${o}: WebGPU differs from the CPU by ${d}`);
    }
    const p = await gpu.placement();
    assert.equal(p.provider, 'webgpu');
    assert.ok(p.nodes > p.cpuNodes, `${p.nodes} kernels, ${p.cpuNodes} on the CPU`);
    if (outputs.includes('probs')) {
      // The MaxPool with Indices is pinned to the CPU; the Convs, Gemm and Softmax are not.
      assert.ok(p.cpuOps.includes('MaxPool'), p.cpuOps.join());
      assert.ok(!p.cpuOps.includes('Conv') && !p.cpuOps.includes('Gemm'), p.cpuOps.join());
      assert.ok(p.copies >= 2, `${p.copies} copies`);
    } else {
      assert.deepEqual(p.cpuOps, [], 'ConvTranspose and ScatterElements run on WebGPU');
    }
    // Later runs are not profiled and still right.
    assert.ok(maxDiff(want[outputs[0] ?? ''], (await gpu.run(feeds))[outputs[0] ?? '']) <= 1e-4);
    await Promise.all([cpu.release(), gpu.release()]);
  }
  assert.deepEqual(profileDirs(), before, 'profile folders are removed');
});

test('placement() refuses a session not asked to record it, or released before its first run', async () => {
  const before = profileDirs();
  const plain = await QueuedSession.create(encodeModel(convNet().m), { device: 'cpu', threads: 1 });
  await assert.rejects(plain.placement(), /recordPlacement/);
  await plain.release();
  const unused = await QueuedSession.create(encodeModel(convNet().m), {
    device: 'cpu',
    recordPlacement: true,
  });
  const placed = unused.placement();
  await unused.release();
  await assert.rejects(placed, /released before its first run/);
  assert.deepEqual(profileDirs(), before, 'the profile ORT writes on release is removed');
});
