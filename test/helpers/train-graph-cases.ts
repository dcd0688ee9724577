// Small ONNX graphs, one per backward rule, and how to build and run them: the case table the training-step
// test (test/engine/train-graph.test.ts) checks against finite differences of the float64 reference.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import {
  DataType,
  encodeModel,
  floatTensor,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../../src/main/engine/onnx/model.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { referenceForward } from './reference-f64.ts';

// ---------- small graphs ----------

export const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: 'ints', ints: v });
export const int = (name: string, i: number): OnnxAttribute => ({ name, type: 'int', i });

export interface ConvOptions {
  stride?: number;
  pad?: number;
  dilation?: number;
  group?: number;
  bias?: boolean;
  scale?: number;
}

/** Builds a seeded NCHW graph node by node; each method returns the tensor it produced. */
class Net {
  readonly nodes: OnnxNode[] = [];
  readonly inits: OnnxTensor[] = [];
  private readonly channels = new Map<string, number>();
  private readonly rng: Rng;
  cut: string;

  constructor(
    seed: number,
    readonly input: [number, number, number, number],
    readonly opset = 13,
  ) {
    this.rng = new Rng(seed);
    this.cut = 'image';
    this.channels.set('image', input[1]);
  }

  private id(op: string): string {
    return `${op}${this.nodes.length}`;
  }

  private weight(name: string, dims: number[], scale: number, offset = 0): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => offset + this.rng.normal() * scale);
    this.inits.push(floatTensor(name, dims, data));
    return name;
  }

  private node(op: string, inputs: string[], attributes: OnnxAttribute[], channels: number): string {
    const name = this.id(op.toLowerCase());
    this.nodes.push({ name, opType: op, domain: '', inputs, outputs: [name], attributes });
    this.channels.set(name, channels);
    return name;
  }

  ch(t: string): number {
    return this.channels.get(t) as number;
  }

  conv(x: string, cout: number, k: number, o: ConvOptions = {}): string {
    const group = o.group ?? 1;
    const cin = this.ch(x);
    const name = this.id('conv');
    const fanIn = (cin / group) * k * k;
    const inputs = [
      x,
      this.weight(`${name}.weight`, [cout, cin / group, k, k], (o.scale ?? 1.5) / Math.sqrt(fanIn)),
    ];
    if (o.bias) inputs.push(this.weight(`${name}.bias`, [cout], 0.3));
    const pad = o.pad ?? 0;
    const d = o.dilation ?? 1;
    return this.node(
      'Conv',
      inputs,
      [
        ints('kernel_shape', [k, k]),
        ints('strides', [o.stride ?? 1, o.stride ?? 1]),
        ints('pads', [pad, pad, pad, pad]),
        ints('dilations', [d, d]),
        int('group', group),
      ],
      cout,
    );
  }

  bn(x: string): string {
    const c = this.ch(x);
    const name = this.id('bn');
    const stats = [
      this.weight(`${name}.weight`, [c], 0.2, 1),
      this.weight(`${name}.bias`, [c], 0.3),
      this.weight(`${name}.running_mean`, [c], 0.3),
    ];
    this.inits.push(
      floatTensor(
        `${name}.running_var`,
        [c],
        Float32Array.from({ length: c }, () => 0.5 + this.rng.next()),
      ),
    );
    return this.node(
      'BatchNormalization',
      [x, ...stats, `${name}.running_var`],
      [{ name: 'epsilon', type: 'float', f: 1e-5 }],
      c,
    );
  }

  relu(x: string): string {
    return this.node('Relu', [x], [], this.ch(x));
  }

  /** Clip with its bounds as inputs (opset ≥ 11) or, for older opsets, as attributes. */
  clip(x: string, lo: number | null, hi: number | null): string {
    if (this.opset < 11) {
      const a: OnnxAttribute[] = [];
      if (lo !== null) a.push({ name: 'min', type: 'float', f: lo });
      if (hi !== null) a.push({ name: 'max', type: 'float', f: hi });
      return this.node('Clip', [x], a, this.ch(x));
    }
    const name = this.id('clip');
    const bound = (suffix: string, v: number | null): string => {
      if (v === null) return '';
      this.inits.push(floatTensor(`${name}.${suffix}`, [], Float32Array.of(v)));
      return `${name}.${suffix}`;
    };
    return this.node('Clip', [x, bound('min', lo), bound('max', hi)], [], this.ch(x));
  }

  add(a: string, b: string): string {
    return this.node('Add', [a, b], [], this.ch(a));
  }

  concat(parts: string[]): string {
    const c = parts.reduce((s, p) => s + this.ch(p), 0);
    return this.node('Concat', parts, [int('axis', 1)], c);
  }

  pool(
    op: 'MaxPool' | 'AveragePool',
    x: string,
    k: number,
    stride: number,
    pad = 0,
    extra: { ceil?: boolean; includePad?: boolean } = {},
  ): string {
    const a = [
      ints('kernel_shape', [k, k]),
      ints('strides', [stride, stride]),
      ints('pads', [pad, pad, pad, pad]),
    ];
    if (extra.ceil) a.push(int('ceil_mode', 1));
    if (op === 'AveragePool') a.push(int('count_include_pad', extra.includePad ? 1 : 0));
    return this.node(op, [x], a, this.ch(x));
  }

  /** Global average pool and flatten into `features`, then the model. */
  finish(x: string): OnnxModel {
    const gap = this.node('GlobalAveragePool', [x], [], this.ch(x));
    this.nodes.push({
      name: 'flatten',
      opType: 'Flatten',
      domain: '',
      inputs: [gap],
      outputs: ['features'],
      attributes: [int('axis', 1)],
    });
    return {
      irVersion: this.opset >= 13 ? 7 : 5,
      opsets: [{ domain: '', version: this.opset }],
      producerName: 'train-graph.test',
      producerVersion: '',
      docString: '',
      metadata: {},
      unknown: [],
      graph: {
        name: 'case',
        nodes: this.nodes,
        initializers: this.inits,
        inputs: [{ name: 'image', elemType: DataType.FLOAT, shape: this.input }],
        outputs: [{ name: 'features', elemType: DataType.FLOAT, shape: [this.input[0], this.ch(x)] }],
        valueInfo: [],
        unknown: [],
      },
    };
  }
}

// ---------- the cases ----------

export interface Case {
  /** The op under test; failures name it. */
  op: string;
  input: [number, number, number, number];
  build(net: Net): string;
  adaptBatchNorm?: boolean;
  /** Spread of the input values (Clip 0..6 needs activations above 6). */
  xScale?: number;
  classes?: number;
  opset?: number;
  /** Every BatchNorm is frozen after a convolution, so the graphs fold them all into the convolutions. */
  folded?: boolean;
  /**
   * The graphs ask for ONNX Runtime's NCHWc convolution kernels (where this runtime has them), and this
   * many convolutions of the step graph run there.
   */
  nchwc?: number;
  /** Checked against ORT's inference only (no gradient case). */
  forwardOnly?: boolean;
}

export const CASES: Case[] = [
  { op: 'Conv 3×3 stride 1 pad 1', input: [3, 2, 6, 6], build: (n) => n.conv('image', 3, 3, { pad: 1 }) },
  {
    op: 'Conv 3×3 stride 2 pad 1, odd size',
    input: [2, 2, 7, 7],
    build: (n) => n.conv('image', 3, 3, { stride: 2, pad: 1 }),
  },
  {
    op: 'Conv 3×3 stride 2 pad 1, even size',
    input: [3, 2, 8, 8],
    build: (n) => n.conv('image', 3, 3, { stride: 2, pad: 1 }),
  },
  {
    op: 'Conv 1×1 stride 2',
    input: [3, 3, 7, 7],
    build: (n) => n.conv(n.conv('image', 3, 3, { pad: 1 }), 4, 1, { stride: 2 }),
  },
  {
    op: 'Conv 7×7 stride 2 pad 3',
    input: [2, 2, 9, 9],
    build: (n) => n.conv('image', 3, 7, { stride: 2, pad: 3 }),
  },
  {
    op: 'Conv 3×3 dilation 2',
    input: [3, 2, 7, 7],
    build: (n) => n.conv('image', 3, 3, { pad: 2, dilation: 2 }),
  },
  {
    op: 'depthwise Conv 3×3 stride 2',
    input: [3, 2, 7, 7],
    build: (n) => n.conv(n.conv('image', 3, 1, { bias: true }), 3, 3, { stride: 2, pad: 1, group: 3 }),
  },
  {
    op: 'depthwise Conv 3×3 stride 1 pad 1',
    input: [3, 2, 6, 6],
    build: (n) => n.conv(n.conv('image', 4, 1, { bias: true }), 4, 3, { pad: 1, group: 4 }),
  },
  {
    op: 'depthwise Conv 3×3 stride 1 dilation 2',
    input: [3, 2, 8, 8],
    build: (n) => n.conv(n.conv('image', 3, 1), 3, 3, { pad: 2, dilation: 2, group: 3 }),
  },
  { op: 'Conv with bias', input: [3, 2, 5, 5], build: (n) => n.conv('image', 3, 3, { pad: 1, bias: true }) },
  {
    // Maps above the batch-wide product's 196 pixels, channels in whole blocks of 8 and 16: the forward
    // convolutions and the stride-1 input gradients run on the blocked kernels, the stem from 3 channels.
    op: 'Conv on NCHWc kernels: 7×7 stride 2 from 3 channels, 3×3 16 → 32 → 16',
    input: [1, 3, 29, 29],
    nchwc: 5, // three forward convolutions and two input gradients
    build: (n) => {
      // No Relu between: with thousands of activations some would lie within the finite difference's
      // reach of the kink.
      const stem = n.conv('image', 16, 7, { stride: 2, pad: 3 });
      return n.conv(n.conv(stem, 32, 3, { pad: 1, bias: true }), 16, 3, { pad: 1 });
    },
  },
  {
    // A frozen BatchNorm folded into its convolution and the Relu after it run inside the blocked kernel.
    op: 'Conv, frozen BatchNorm and Relu in one NCHWc kernel (16 channels, 15×15)',
    input: [1, 16, 15, 15],
    nchwc: 3, // two forward convolutions and one input gradient
    folded: true,
    build: (n) => n.conv(n.relu(n.bn(n.conv('image', 16, 3, { pad: 1 }))), 16, 3, { pad: 1 }),
  },
  {
    op: 'BatchNormalization frozen',
    input: [3, 2, 6, 6],
    folded: true,
    build: (n) => n.bn(n.conv('image', 3, 3, { pad: 1 })),
  },
  {
    op: 'BatchNormalization batch statistics',
    input: [3, 2, 6, 6],
    adaptBatchNorm: true,
    build: (n) => n.relu(n.bn(n.conv('image', 3, 3, { pad: 1 }))),
  },
  { op: 'Relu', input: [3, 2, 6, 6], build: (n) => n.relu(n.conv('image', 3, 3, { pad: 1, bias: true })) },
  {
    op: 'Clip 0..6',
    input: [3, 2, 6, 6],
    xScale: 4,
    build: (n) => n.clip(n.conv('image', 3, 3, { pad: 1, scale: 3 }), 0, 6),
  },
  {
    op: 'Add (residual)',
    input: [3, 2, 6, 6],
    build: (n) => {
      const a = n.conv('image', 3, 3, { pad: 1 });
      return n.add(n.conv(a, 3, 3, { pad: 1 }), a);
    },
  },
  {
    op: 'Concat (fire module)',
    input: [3, 3, 6, 6],
    build: (n) => {
      const s = n.relu(n.conv('image', 2, 1, { bias: true }));
      return n.concat([
        n.relu(n.conv(s, 3, 1, { bias: true })),
        n.relu(n.conv(s, 3, 3, { pad: 1, bias: true })),
      ]);
    },
  },
  {
    op: 'MaxPool 3×3 stride 2 pad 1',
    input: [3, 2, 7, 7],
    build: (n) => n.pool('MaxPool', n.conv('image', 3, 3, { pad: 1 }), 3, 2, 1),
  },
  {
    op: 'MaxPool 3×3 stride 2 ceil_mode',
    input: [3, 2, 8, 8],
    build: (n) => n.pool('MaxPool', n.conv('image', 3, 3, { pad: 1 }), 3, 2, 0, { ceil: true }),
  },
  {
    op: 'AveragePool 2×2 stride 2',
    input: [3, 2, 7, 7],
    build: (n) => n.pool('AveragePool', n.conv('image', 3, 3, { pad: 1 }), 2, 2),
  },
  {
    op: 'AveragePool 3×3 stride 2 pad 1 count_include_pad 1',
    input: [3, 2, 7, 7],
    build: (n) => n.pool('AveragePool', n.conv('image', 3, 3, { pad: 1 }), 3, 2, 1, { includePad: true }),
  },
  {
    op: 'head and loss',
    input: [3, 3, 5, 5],
    classes: 5,
    build: (n) => n.conv('image', 4, 1, { bias: true }),
  },
  {
    op: 'partial (cut after a frozen Conv+Relu)',
    input: [3, 2, 6, 6],
    build: (n) => {
      n.cut = n.relu(n.conv('image', 3, 3, { pad: 1 }));
      return n.conv(n.cut, 3, 3, { stride: 2, pad: 1, bias: true });
    },
  },
  {
    // Frozen BatchNorm after a convolution is folded into it; the convolution here has a bias too.
    op: 'basic block (Conv, BN, Relu, MaxPool, Add) with frozen BatchNorm folded into the convolutions',
    input: [3, 2, 9, 9],
    folded: true,
    build: (n) => {
      const stem = n.pool('MaxPool', n.relu(n.bn(n.conv('image', 3, 3, { stride: 2, pad: 1 }))), 3, 2, 1);
      const a = n.bn(n.conv(n.relu(n.bn(n.conv(stem, 3, 3, { pad: 1, bias: true }))), 3, 3, { pad: 1 }));
      return n.relu(n.add(a, stem));
    },
  },
  {
    op: 'basic block (Conv, BN, Relu, MaxPool, Add) with batch statistics',
    input: [3, 2, 9, 9],
    adaptBatchNorm: true,
    build: (n) => {
      const stem = n.pool('MaxPool', n.relu(n.bn(n.conv('image', 3, 3, { stride: 2, pad: 1 }))), 3, 2, 1);
      const a = n.bn(n.conv(n.relu(n.bn(n.conv(stem, 3, 3, { pad: 1 }))), 3, 3, { pad: 1 }));
      return n.relu(n.add(a, stem));
    },
  },
  // Forward-only: op variants the reference handles that no gradient case needs.
  {
    op: 'Clip as attributes (opset 10)',
    input: [2, 2, 5, 5],
    opset: 10,
    xScale: 3,
    forwardOnly: true,
    build: (n) => n.clip(n.conv('image', 3, 3), -0.5, 0.8),
  },
  {
    op: 'Clip with min only',
    input: [2, 2, 5, 5],
    forwardOnly: true,
    build: (n) => n.clip(n.conv('image', 3, 3), 0.1, null),
  },
  {
    op: 'grouped Conv (group 2)',
    input: [2, 4, 6, 6],
    forwardOnly: true,
    build: (n) => n.conv('image', 6, 3, { group: 2, pad: 1 }),
  },
  {
    // The training graph rejects this one (padding left out of the average has no rule there).
    op: 'AveragePool count_include_pad 0, pad 1',
    input: [2, 2, 7, 7],
    forwardOnly: true,
    build: (n) => n.pool('AveragePool', n.conv('image', 3, 1), 3, 2, 1),
  },
  {
    op: 'AveragePool ceil_mode, count_include_pad 1',
    input: [2, 2, 8, 8],
    forwardOnly: true,
    build: (n) => n.pool('AveragePool', n.conv('image', 3, 1), 3, 2, 1, { ceil: true, includePad: true }),
  },
  {
    op: 'MaxPool 2×2 stride 2 pad 1 ceil_mode (last window dropped)',
    input: [2, 2, 7, 7],
    forwardOnly: true,
    build: (n) => n.pool('MaxPool', n.conv('image', 3, 1), 2, 2, 1, { ceil: true }),
  },
];

export function seedOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export interface Built {
  model: OnnxModel;
  cut: string;
  image: Float32Array;
  /** The value of `cut` for the step graph, and its shape. */
  x: Float32Array;
  xShape: number[];
  rng: Rng;
}

export function build(c: Case): Built {
  const net = new Net(seedOf(c.op), c.input, c.opset ?? 13);
  const model = net.finish(c.build(net));
  const rng = new Rng(seedOf(c.op) ^ 0x5eed);
  const randoms = (n: number, scale: number): Float32Array =>
    Float32Array.from({ length: n }, () => rng.normal() * scale);
  const image = randoms(
    c.input.reduce((a, b) => a * b, 1),
    c.xScale ?? 1,
  );
  let x = image;
  let xShape: number[] = c.input;
  if (net.cut !== 'image') {
    xShape = referenceForward(model, image, c.input, { cut: 'image', features: net.cut }).shape;
    x = randoms(
      xShape.reduce((a, b) => a * b, 1),
      1,
    );
  }
  return { model, cut: net.cut, image, x, xShape, rng };
}

// ---------- ORT ----------

export async function runOrt(
  model: OnnxModel,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(encodeModel(model), {
    intraOpNumThreads: 1,
    logSeverityLevel: 3, // the generated graphs leave unused constants, which ORT reports as warnings
  });
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

export const f32 = (data: Float32Array, dims: number[]): ort.Tensor => new ort.Tensor('float32', data, dims);

/** The model with BatchNormalization in training mode (batch statistics), as ORT runs it from opset 15. */
export function trainingModeBatchNorm(model: OnnxModel): OnnxModel {
  return {
    ...model,
    irVersion: 8,
    opsets: [{ domain: '', version: 15 }],
    graph: {
      ...model.graph,
      nodes: model.graph.nodes.map((n) =>
        n.opType === 'BatchNormalization'
          ? {
              ...n,
              outputs: [n.outputs[0] as string, `${n.name}.rm`, `${n.name}.rv`],
              attributes: [...n.attributes, int('training_mode', 1)],
            }
          : n,
      ),
    },
  };
}

export function worst(
  what: string,
  actual: ArrayLike<number> | undefined,
  expected: ArrayLike<number>,
  tol: number,
): number {
  assert.ok(actual, `${what}: missing`);
  assert.equal(actual.length, expected.length, `${what}: lengths differ`);
  let bad = { i: -1, err: 0 };
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const err = Math.abs((actual[i] as number) - e) / Math.max(1, Math.abs(e));
    if (err > bad.err) bad = { i, err };
  }
  assert.ok(bad.err <= tol, `${what}[${bad.i}]: ${actual[bad.i]} vs ${expected[bad.i]}`);
  return bad.err;
}

// ---------- forward validation ----------

for (const c of CASES) {
  test(`reference forward equals ONNX Runtime: ${c.op}`, async () => {
    const b = build(c);
    const ortFeatures = (await runOrt(b.model, { image: f32(b.image, c.input) })).features as Float32Array;
    const ref = referenceForward(b.model, b.image, c.input, { cut: 'image', features: 'features' });
    assert.deepEqual(ref.shape, [c.input[0], ortFeatures.length / c.input[0]]);
    worst(`${c.op}: ORT features`, ortFeatures, ref.data, 1e-4);
    if (b.model.graph.nodes.some((n) => n.opType === 'BatchNormalization')) {
      const train = (await runOrt(trainingModeBatchNorm(b.model), { image: f32(b.image, c.input) }))
        .features as Float32Array;
      const batch = referenceForward(b.model, b.image, c.input, {
        cut: 'image',
        features: 'features',
        batchNorm: 'batch',
      });
      worst(`${c.op}: ORT features with BN training_mode`, train, batch.data, 1e-4);
    }
  });
}
