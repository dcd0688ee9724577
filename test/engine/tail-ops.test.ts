// Every op the fine-tuning tail imports, on a small ONNX graph: TF.js forward equals ONNX Runtime, and
// the gradients on the wasm backend equal the cpu backend's and finite differences.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { buildTail } from '../../src/main/engine/finetune/tail-graph.ts';
import { initTf, tf } from '../../src/main/engine/finetune/tf-backend.ts';
import {
  DataType,
  encodeModel,
  floatTensor,
  type OnnxModel,
  type OnnxNode,
} from '../../src/main/engine/onnx/model.ts';
import { QueuedSession, ort } from '../../src/main/engine/onnx/session.ts';
import { Rng } from '../../src/main/engine/random.ts';

function graph(): OnnxModel {
  const rng = new Rng(3);
  const t = (name: string, dims: number[], scale = 0.3, offset = 0) =>
    floatTensor(
      name,
      dims,
      Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => offset + rng.normal() * scale),
    );
  const ints = (name: string, v: number[]) => ({ name, type: 'ints' as const, ints: v });
  const conv = (
    name: string,
    input: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    pad: number,
    bias: boolean,
  ): OnnxNode => ({
    name,
    opType: 'Conv',
    domain: '',
    inputs: bias ? [input, `${name}.w`, `${name}.b`] : [input, `${name}.w`],
    outputs: [name],
    attributes: [
      ints('kernel_shape', [k, k]),
      ints('strides', [stride, stride]),
      ints('pads', [pad, pad, pad, pad]),
    ],
  });
  const nodes: OnnxNode[] = [
    conv('c1', 'x', 3, 4, 3, 1, 1, true),
    {
      name: 'bn',
      opType: 'BatchNormalization',
      domain: '',
      inputs: ['c1', 'bn.g', 'bn.b', 'bn.m', 'bn.v'],
      outputs: ['bn'],
      attributes: [{ name: 'epsilon', type: 'float', f: 1e-5 }],
    },
    { name: 'r', opType: 'Relu', domain: '', inputs: ['bn'], outputs: ['r'], attributes: [] },
    {
      name: 'mp',
      opType: 'MaxPool',
      domain: '',
      inputs: ['r'],
      outputs: ['mp'],
      attributes: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])],
    },
    conv('ca', 'mp', 4, 3, 1, 1, 0, true),
    conv('cb', 'mp', 4, 5, 3, 1, 1, false),
    {
      name: 'cat',
      opType: 'Concat',
      domain: '',
      inputs: ['ca', 'cb'],
      outputs: ['cat'],
      attributes: [{ name: 'axis', type: 'int', i: 1 }],
    },
    {
      name: 'clip',
      opType: 'Clip',
      domain: '',
      inputs: ['cat', 'lo', 'hi'],
      outputs: ['clip'],
      attributes: [],
    },
    conv('c2', 'clip', 8, 8, 3, 2, 1, true),
    conv('skip', 'clip', 8, 8, 1, 2, 0, false),
    { name: 'add', opType: 'Add', domain: '', inputs: ['c2', 'skip'], outputs: ['add'], attributes: [] },
    {
      name: 'gap',
      opType: 'GlobalAveragePool',
      domain: '',
      inputs: ['add'],
      outputs: ['gap'],
      attributes: [],
    },
    {
      name: 'flat',
      opType: 'Flatten',
      domain: '',
      inputs: ['gap'],
      outputs: ['features'],
      attributes: [{ name: 'axis', type: 'int', i: 1 }],
    },
  ];
  return {
    irVersion: 7,
    opsets: [{ domain: '', version: 13 }],
    producerName: 'test',
    producerVersion: '',
    docString: '',
    metadata: {},
    unknown: [],
    graph: {
      name: 'ops',
      nodes,
      initializers: [
        t('c1.w', [4, 3, 3, 3]),
        t('c1.b', [4], 0.1),
        t('bn.g', [4], 0.2, 1),
        t('bn.b', [4], 0.1),
        t('bn.m', [4], 0.1),
        floatTensor('bn.v', [4], Float32Array.from([0.5, 1, 1.5, 2])),
        t('ca.w', [3, 4, 1, 1]),
        t('ca.b', [3], 0.1),
        t('cb.w', [5, 4, 3, 3]),
        floatTensor('lo', [], Float32Array.of(-0.5)),
        floatTensor('hi', [], Float32Array.of(0.8)),
        t('c2.w', [8, 8, 3, 3]),
        t('c2.b', [8], 0.1),
        t('skip.w', [8, 8, 1, 1]),
      ],
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [2, 3, 9, 9] }],
      outputs: [{ name: 'features', elemType: DataType.FLOAT, shape: [2, 8] }],
      valueInfo: [],
      unknown: [],
    },
  };
}

const X = Float32Array.from({ length: 2 * 3 * 9 * 9 }, (_, i) => Math.sin(i * 0.37) * 1.5);
const nhwc = (): tf.Tensor4D => tf.transpose(tf.tensor4d(X, [2, 3, 9, 9]), [0, 2, 3, 1]);

before(async () => {
  await initTf('wasm');
});

test('the tail executor matches ONNX Runtime on Conv, BatchNormalization, Relu, MaxPool, Concat, Clip, Add, GlobalAveragePool, Flatten', async () => {
  const model = graph();
  const s = await QueuedSession.create(encodeModel(model));
  const ortOut = (await s.run({ x: new ort.Tensor('float32', X, [2, 3, 9, 9]) })).features
    ?.data as Float32Array;
  await s.release();
  const tail = buildTail(model, 'x', 'features');
  const tfOut = tf.tidy(() => tail.forward(nhwc()).dataSync());
  tail.dispose();
  assert.equal(tfOut.length, 16);
  for (let i = 0; i < 16; i++)
    assert.ok(
      Math.abs((tfOut[i] as number) - (ortOut[i] as number)) < 1e-5,
      `${i}: ${tfOut[i]} vs ${ortOut[i]}`,
    );
});

async function gradients(backend: 'cpu' | 'wasm'): Promise<Map<string, Float32Array>> {
  await initTf(backend);
  const tail = buildTail(graph(), 'x', 'features');
  const target = tf.tensor2d(
    Float32Array.from({ length: 16 }, (_, i) => Math.cos(i)),
    [2, 8],
  );
  const { grads } = tf.variableGrads(
    (): tf.Scalar => tf.sum<tf.Scalar>(tf.mul(tail.forward(nhwc()), target)),
    [...tail.variables.values()],
  );
  const out = new Map<string, Float32Array>();
  for (const [name, v] of tail.variables)
    out.set(name, Float32Array.from((grads[v.name] as tf.Tensor).dataSync()));
  tail.dispose();
  return out;
}

test('every variable of the tail gets the same gradient on wasm as on the cpu backend, and as finite differences', async () => {
  const cpu = await gradients('cpu');
  const wasm = await gradients('wasm');
  assert.deepEqual([...wasm.keys()].sort(), [
    'bn.b',
    'bn.g',
    'c1.b',
    'c1.w',
    'c2.b',
    'c2.w',
    'ca.b',
    'ca.w',
    'cb.w',
    'skip.w',
  ]);
  for (const [name, g] of wasm) {
    const c = cpu.get(name) as Float32Array;
    let worst = 0;
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs((g[i] as number) - (c[i] as number)));
    assert.ok(worst < 1e-4, `${name}: ${worst}`);
  }
  // Finite differences on a few weights of the first convolution and the BatchNorm scale.
  await initTf('wasm');
  const tail = buildTail(graph(), 'x', 'features');
  const target = tf.tensor2d(
    Float32Array.from({ length: 16 }, (_, i) => Math.cos(i)),
    [2, 8],
  );
  const f = (): number => tf.tidy(() => tf.sum(tf.mul(tail.forward(nhwc()), target)).dataSync()[0] as number);
  for (const [name, idx] of [
    ['c1.w', 5],
    ['c1.w', 40],
    ['bn.g', 2],
    ['c2.w', 100],
  ] as const) {
    const v = tail.variables.get(name) as tf.Variable;
    const base = Float32Array.from(v.dataSync());
    // Small steps: ReLU, max-pool and clip kinks make wide differences disagree with the true slope.
    const h = 1e-3;
    const plus = Float32Array.from(base);
    plus[idx] = (plus[idx] as number) + h;
    const minus = Float32Array.from(base);
    minus[idx] = (minus[idx] as number) - h;
    v.assign(tf.tensor(plus, v.shape));
    const fp = f();
    v.assign(tf.tensor(minus, v.shape));
    const fm = f();
    v.assign(tf.tensor(base, v.shape));
    const numeric = (fp - fm) / (2 * h);
    const analytic = (wasm.get(name) as Float32Array)[idx] as number;
    assert.ok(
      Math.abs(numeric - analytic) < 5e-3 * Math.max(1, Math.abs(numeric)),
      `${name}[${idx}]: ${numeric} vs ${analytic}`,
    );
  }
  tail.dispose();
});
