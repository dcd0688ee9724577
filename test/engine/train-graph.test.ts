// The generated ONNX training step, op by op: a float64 reference (test/helpers/reference-f64.ts) is first
// checked against ONNX Runtime's inference, then the step graph's gradients are checked against central
// finite differences of that reference, and one Adam update against a hand computation.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import {
  DataType,
  floatTensor,
  tensorFloats,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
} from '../../src/main/engine/onnx/model.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { buildTrainGraphs, type TrainGraphs } from '../../src/main/engine/finetune/train-graph.ts';
import { NCHWC_DOMAIN, nchwcBlockSize } from '../../src/main/engine/onnx/nchwc.ts';
import {
  newKinks,
  referenceForward,
  referenceLogits,
  referenceLoss,
  referenceTrainLoss,
  tailOf,
  type F64Tensor,
  type ReferenceBatch,
} from '../helpers/reference-f64.ts';

import {
  ints,
  int,
  CASES,
  seedOf,
  build,
  runOrt,
  f32,
  worst,
  type Case,
  type Built,
} from '../helpers/train-graph-cases.ts';

test('reference head and loss equal an ONNX graph of them', async () => {
  const rng = new Rng(11);
  const [N, D, K] = [3, 4, 5];
  const r = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * s);
  const f = r(N * D);
  const centre = r(D, 0.3);
  const W = r(K * D);
  const bias = r(K, 0.3);
  const { targets, sampleWeights } = batchLabels(rng, N, K);
  const node = (
    opType: string,
    inputs: string[],
    output: string,
    attributes: OnnxAttribute[] = [],
  ): OnnxNode => ({
    name: output,
    opType,
    domain: '',
    inputs,
    outputs: [output],
    attributes,
  });
  const model: OnnxModel = {
    irVersion: 7,
    opsets: [{ domain: '', version: 13 }],
    producerName: '',
    producerVersion: '',
    docString: '',
    metadata: {},
    unknown: [],
    graph: {
      name: 'head',
      nodes: [
        node('Sub', ['f', 'centre'], 'c'),
        node('ReduceL2', ['c'], 'norm', [ints('axes', [1]), int('keepdims', 1)]),
        node('Max', ['norm', 'tiny'], 'den'),
        node('Div', ['c', 'den'], 'q'),
        node('Gemm', ['q', 'W', 'b'], 'logits', [int('transB', 1)]),
        node('LogSoftmax', ['logits'], 'logp', [int('axis', 1)]),
        node('Mul', ['logp', 't'], 'tl'),
        node('ReduceSum', ['tl', 'axis1'], 'row', [int('keepdims', 0)]),
        node('Mul', ['row', 'w'], 'wrow'),
        node('ReduceSum', ['wrow'], 'sum', [int('keepdims', 0)]),
        node('Neg', ['sum'], 'loss'),
      ],
      initializers: [
        floatTensor('centre', [D], centre),
        floatTensor('W', [K, D], W),
        floatTensor('b', [K], bias),
        floatTensor('tiny', [], Float32Array.of(1e-12)),
        {
          name: 'axis1',
          dims: [1],
          dataType: DataType.INT64,
          raw: new Uint8Array(BigInt64Array.of(1n).buffer),
          unknown: [],
        },
      ],
      inputs: [
        { name: 'f', elemType: DataType.FLOAT, shape: [N, D] },
        { name: 't', elemType: DataType.FLOAT, shape: [N, K] },
        { name: 'w', elemType: DataType.FLOAT, shape: [N] },
      ],
      outputs: [
        { name: 'logits', elemType: DataType.FLOAT, shape: [N, K] },
        { name: 'loss', elemType: DataType.FLOAT, shape: [] },
      ],
      valueInfo: [],
      unknown: [],
    },
  };
  const out = await runOrt(model, { f: f32(f, [N, D]), t: f32(targets, [N, K]), w: f32(sampleWeights, [N]) });
  const logits = referenceLogits({ shape: [N, D], data: Float64Array.from(f) }, centre, W, bias);
  worst('head logits', out.logits, logits.data, 1e-5);
  worst('loss', out.loss, [referenceLoss(logits, targets, sampleWeights)], 1e-5);
});

/** Smoothed one-hot targets and non-uniform sample weights summing to 1. */
function batchLabels(rng: Rng, N: number, K: number): { targets: Float32Array; sampleWeights: Float32Array } {
  const smoothing = 0.2;
  const targets = new Float32Array(N * K).fill(smoothing / K);
  for (let n = 0; n < N; n++) targets[n * K + ((n * 2 + 1) % K)] = 1 - smoothing + smoothing / K;
  const raw = Array.from({ length: N }, (_, n) => 1 + n + rng.next());
  const total = raw.reduce((a, b) => a + b, 0);
  return { targets, sampleWeights: Float32Array.from(raw, (v) => v / total) };
}

// ---------- the training graph ----------

/** This runtime's NCHWc block size (0: it has no such kernels, and the NCHWc cases check plain ones). */
const NCHWC_BLOCK = await nchwcBlockSize();

interface Setup {
  b: Built;
  graphs: TrainGraphs;
  batch: ReferenceBatch & { targets: Float32Array; sampleWeights: Float32Array; centre: Float32Array };
  /** Every trainable tensor's value, backbone ones from the model, the head seeded. */
  values: Map<string, Float32Array>;
  /** Adapted BatchNorm running statistics as fed (scaled from the model's, so they stay positive). */
  statistics: Map<string, Float32Array>;
  K: number;
}

function setup(c: Case, optimizer: 'adam' | 'sgd' = 'adam'): Setup {
  const b = build(c);
  const K = c.classes ?? 3;
  const N = b.xShape[0] as number;
  const D = (b.model.graph.outputs[0]?.shape?.[1] ?? 0) as number;
  const centre = Float32Array.from({ length: D }, () => b.rng.normal() * 0.2);
  const graphs = buildTrainGraphs({
    model: b.model,
    cut: b.cut,
    features: 'features',
    inputShape: b.xShape.slice(1),
    classes: K,
    centre,
    optimizer,
    adaptBatchNorm: c.adaptBatchNorm ?? false,
    nchwcBlock: c.nchwc !== undefined ? NCHWC_BLOCK : 0,
    outputGradients: true,
  });
  const inits = new Map(b.model.graph.initializers.map((t) => [t.name, tensorFloats(t)]));
  const values = new Map<string, Float32Array>();
  for (const p of graphs.params) {
    const n = p.dims.reduce((a, d) => a * d, 1);
    assert.equal(
      p.init.length,
      n,
      `${c.op}: ${p.name} init has ${p.init.length} values for [${p.dims.join(', ')}]`,
    );
    if (p.role === 'head')
      values.set(
        p.name,
        Float32Array.from({ length: n }, () => b.rng.normal() * (p.dims.length > 1 ? 1 : 0.3)),
      );
    else {
      const init = inits.get(p.name);
      assert.ok(init, `${c.op}: backbone param ${p.name} is not an initializer of the model`);
      assert.deepEqual(p.init, init, `${c.op}: ${p.name} init differs from the model's initializer`);
      // Fed values differ from the initializers, so a graph that kept its own copy would show.
      values.set(
        p.name,
        init.map((v) => v + b.rng.normal() * 0.05),
      );
    }
  }
  // Every Conv weight and bias after the cut trains, and the head.
  const convs = tailOf(b.model, b.cut, 'features').filter((n) => n.opType === 'Conv');
  for (const want of ['head.weight', 'head.bias', ...convs.flatMap((n) => n.inputs.slice(1).filter(Boolean))])
    assert.ok(values.has(want), `${c.op}: ${want} is not among the trainable params`);
  const { targets, sampleWeights } = batchLabels(b.rng, N, K);
  const statistics = new Map<string, Float32Array>();
  for (const t of graphs.statistics) {
    assert.deepEqual(t.init, inits.get(t.name), `${c.op}: statistic ${t.name} init differs from the model's`);
    statistics.set(
      t.name,
      t.init.map((v) => v * (0.8 + 0.4 * b.rng.next())),
    );
  }
  return {
    b,
    graphs,
    values,
    statistics,
    K,
    batch: { x: b.x, xShape: b.xShape, centre, targets, sampleWeights },
  };
}

interface Scalars {
  lrHead: number;
  lrBackbone: number;
  weightDecay: number;
  clipNorm: number;
  bc1: number;
  bc2: number;
}

/** Feeds every input the step (or evaluate) graph declares, by the contract's names. */
function feedsFor(
  model: OnnxModel,
  s: Setup,
  scalars: Scalars,
  state: Map<string, Float32Array> = new Map(),
): Record<string, ort.Tensor> {
  const dims = new Map(s.graphs.params.map((p) => [p.name, p.dims]));
  const stats = new Map(s.graphs.statistics.map((t) => [t.name, t]));
  const feeds: Record<string, ort.Tensor> = {};
  for (const { name } of model.graph.inputs) {
    const base = name.replace(/^[mv]\./, '');
    if (name === 'x') feeds[name] = f32(s.b.x, s.b.xShape);
    else if (name === 'targets') feeds[name] = f32(s.batch.targets, [s.b.xShape[0] as number, s.K]);
    else if (name === 'sampleWeights') feeds[name] = f32(s.batch.sampleWeights, [s.b.xShape[0] as number]);
    else if (name in scalars) feeds[name] = f32(Float32Array.of(scalars[name as keyof Scalars]), []);
    else if (s.values.has(name))
      feeds[name] = f32(s.values.get(name) as Float32Array, dims.get(name) as number[]);
    else if (name !== base && dims.has(base)) {
      const d = dims.get(base) as number[];
      feeds[name] = f32(state.get(name) ?? new Float32Array(d.reduce((a, b) => a * b, 1)), d);
    } else if (stats.has(name)) {
      const t = stats.get(name) as { init: Float32Array; dims: number[] };
      feeds[name] = f32(s.statistics.get(name) as Float32Array, t.dims);
    } else assert.fail(`graph input ${name} is not part of the step graph contract`);
  }
  return feeds;
}

const PLAIN: Scalars = {
  lrHead: 0.01,
  lrBackbone: 0.001,
  weightDecay: 0,
  clipNorm: 1e9,
  bc1: 10,
  bc2: 1000,
};

/** Up to `limit` element indices, all of them for small tensors, else a seeded sample. */
function sample(n: number, limit: number, rng: Rng): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  return n <= limit
    ? all
    : rng
        .shuffle(all)
        .slice(0, limit)
        .sort((a, b) => a - b);
}

for (const c of CASES.filter((x) => !x.forwardOnly)) {
  test(`step graph gradients equal finite differences: ${c.op}`, async (t) => {
    const s = setup(c);
    if (c.nchwc) {
      const blocked = s.graphs.step.graph.nodes.filter(
        (n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv',
      );
      if (NCHWC_BLOCK === 0)
        t.diagnostic('SKIPPED: this runtime has no NCHWc kernels; plain convolutions checked');
      else
        assert.equal(blocked.length, c.nchwc, `${c.op}: ${blocked.length} convolutions on the NCHWc kernels`);
    }
    if (c.folded)
      for (const g of [s.graphs.step, s.graphs.evaluate])
        assert.ok(
          !g.graph.nodes.some((n) => n.opType === 'BatchNormalization'),
          `${c.op}: a BatchNorm was not folded into its convolution`,
        );
    const out = await runOrt(s.graphs.step, feedsFor(s.graphs.step, s, PLAIN));
    const params = new Map([...s.values, ...s.statistics].map(([k, v]) => [k, Float64Array.from(v)]));
    const mode = c.adaptBatchNorm ? 'batch' : 'running';
    const options = { cut: s.b.cut, features: 'features', params, batchNorm: mode } as const;
    const base = newKinks();
    const loss = referenceTrainLoss(s.b.model, s.batch, { ...options, kinks: base });
    worst(`${c.op}: step loss`, out.loss, [loss], 1e-4);
    assert.ok(
      base.margin > 1e-4,
      `${c.op}: the seeded data lies ${base.margin} from a Relu/Clip/MaxPool kink`,
    );

    const h = 1e-5;
    const failures: string[] = [];
    const rng = new Rng(seedOf(c.op) ^ 0xfd);
    let checked = 0;
    let largest = 0;
    let err = 0;
    for (const p of s.graphs.params) {
      const grad = out[`grad.${p.name}`];
      if (!grad) {
        failures.push(`${c.op}: no output grad.${p.name}`);
        continue;
      }
      const v = params.get(p.name) as Float64Array;
      for (const i of sample(v.length, 40, rng)) {
        const keep = v[i] as number;
        const plus = newKinks();
        const minus = newKinks();
        v[i] = keep + h;
        const lp = referenceTrainLoss(s.b.model, s.batch, { ...options, kinks: plus });
        v[i] = keep - h;
        const lm = referenceTrainLoss(s.b.model, s.batch, { ...options, kinks: minus });
        v[i] = keep;
        if (plus.pattern.join() !== base.pattern.join() || minus.pattern.join() !== base.pattern.join()) {
          failures.push(
            `${c.op}: ${p.name}[${i}] straddles a kink; finite differences are invalid there (reseed)`,
          );
          continue;
        }
        const fd = (lp - lm) / (2 * h);
        const g = grad[i] as number;
        checked++;
        largest = Math.max(largest, Math.abs(fd));
        err = Math.max(err, Math.abs(g - fd));
        if (!(Math.abs(g - fd) <= 1e-4 * Math.max(1, Math.abs(fd))))
          failures.push(`${c.op}: ${p.name}[${i}] ORT ${g} vs finite difference ${fd}`);
      }
    }
    t.diagnostic(
      `${checked} elements of ${s.graphs.params.length} params; max |FD| ${largest.toPrecision(3)}, max |ORT − FD| ${err.toPrecision(2)}, kink margin ${base.margin.toPrecision(2)}`,
    );
    assert.deepEqual(failures, []);

    // The evaluate graph: inference with the running statistics.
    const ev = await runOrt(s.graphs.evaluate, feedsFor(s.graphs.evaluate, s, PLAIN));
    const f: F64Tensor = referenceForward(s.b.model, s.b.x, s.b.xShape, { ...options, batchNorm: 'running' });
    worst(`${c.op}: evaluate features`, ev.features, f.data, 1e-4);
    const logits = referenceLogits(
      f,
      s.batch.centre,
      s.values.get('head.weight') as Float32Array,
      s.values.get('head.bias') as Float32Array,
    );
    worst(`${c.op}: evaluate logits`, ev.logits, logits.data, 1e-4);
  });
}

test('one Adam step equals a hand computation with clipping and decoupled weight decay', async () => {
  // β1 0.9, β2 0.999, ε 1e-8, decay as p·(1 − lr·wd), and bc1, bc2 fed as the reciprocal bias corrections
  // 1/(1 − βᵗ), as src/main/engine/finetune/finetune.ts trains.
  const c = CASES.find((x) => x.op.startsWith('basic block')) as Case;
  const s = setup(c);
  const rng = new Rng(5);
  const state = new Map<string, Float32Array>();
  for (const [name, v] of s.values) {
    state.set(
      `m.${name}`,
      Float32Array.from(v, () => rng.normal() * 0.05),
    );
    state.set(
      `v.${name}`,
      Float32Array.from(v, () => (rng.normal() * 0.05) ** 2),
    );
  }
  const probe = await runOrt(s.graphs.step, feedsFor(s.graphs.step, s, PLAIN, state));
  let sq = 0;
  for (const p of s.graphs.params) for (const g of probe[`grad.${p.name}`] as Float32Array) sq += g * g;
  const norm = Math.sqrt(sq);
  worst('gradNorm', probe.gradNorm, [norm], 1e-4);

  const t = 3;
  const sc: Scalars = {
    lrHead: 0.05,
    lrBackbone: 0.01,
    weightDecay: 0.1,
    clipNorm: norm / 3,
    bc1: 1 / (1 - 0.9 ** t),
    bc2: 1 / (1 - 0.999 ** t),
  };
  const out = await runOrt(s.graphs.step, feedsFor(s.graphs.step, s, sc, state));
  const gn = (out.gradNorm as Float32Array)[0] as number;
  const scale = Math.min(1, sc.clipNorm / gn);
  const failures: string[] = [];
  for (const p of s.graphs.params) {
    const lr = p.role === 'head' ? sc.lrHead : sc.lrBackbone;
    const g = out[`grad.${p.name}`] as Float32Array;
    const w = s.values.get(p.name) as Float32Array;
    const m0 = state.get(`m.${p.name}`) as Float32Array;
    const v0 = state.get(`v.${p.name}`) as Float32Array;
    const [nw, nm, nv] = ['next.', 'next.m.', 'next.v.'].map((k) => out[`${k}${p.name}`]);
    if (!nw || !nm || !nv) {
      failures.push(`no next.${p.name}, next.m.${p.name} or next.v.${p.name}`);
      continue;
    }
    for (let i = 0; i < w.length; i++) {
      const gi = (g[i] as number) * scale;
      const m = 0.9 * (m0[i] as number) + 0.1 * gi;
      const v = 0.999 * (v0[i] as number) + 0.001 * gi * gi;
      const decayed = (w[i] as number) * (p.decay ? 1 - lr * sc.weightDecay : 1);
      const next = decayed - (lr * (m * sc.bc1)) / (Math.sqrt(v * sc.bc2) + 1e-8);
      const checks: [string, number, number, number][] = [
        [`next.${p.name}`, nw[i] as number, next, 1e-5 * Math.max(1, Math.abs(next))],
        [`next.m.${p.name}`, nm[i] as number, m, 1e-4 * Math.abs(m) + 1e-7],
        [`next.v.${p.name}`, nv[i] as number, v, 1e-4 * v + 1e-9],
      ];
      for (const [what, got, want, tol] of checks)
        if (!(Math.abs(got - want) <= tol))
          failures.push(`${what}[${i}] (${p.role}, decay ${p.decay}): ${got} vs ${want}`);
    }
  }
  assert.deepEqual(failures.slice(0, 20), []);
});
