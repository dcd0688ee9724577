// Training graphs for ONNX Runtime, generated from a backbone's own ONNX graph: the trained tail (from a cut
// tensor to the pooled features), the cosine-classifier head, the loss (cross-entropy against given target
// distributions, per-sample weights), the gradient of every trainable tensor by reverse-mode rules written
// as ONNX ops, global-norm clipping and the optimiser update (Adam or SGD with momentum, decoupled weight
// decay, separate learning rates for head and backbone). One `step` run is one optimisation step; weights and
// optimiser state go in as inputs and come out as `next.*`, so they stay runtime tensors between steps.

import { FewShotError } from '../../../shared/errors.ts';
import { f, GraphBuilder, type AttrValue } from '../onnx/builder.ts';
import {
  DataType,
  floatAttr,
  intAttr,
  intsAttr,
  stringAttr,
  tensorFloats,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../onnx/model.ts';
import { NCHWC_DOMAIN } from '../onnx/nchwc.ts';
import { tailNodes } from './stages.ts';

export interface TrainGraphSpec {
  model: OnnxModel;
  /** Where the trained part starts: a tensor of the backbone (its input for full fine-tuning). */
  cut: string;
  /** The pooled features [N, D]. */
  features: string;
  /** [C, H, W] of `cut`. */
  inputShape: number[];
  classes: number;
  /** Subtracted from the features before their L2 normalisation (the linear probe's centre; default 0). */
  centre?: Float32Array;
  optimizer: 'adam' | 'sgd';
  momentum?: number;
  /** BatchNorm normalises by the batch's statistics while training and updates its running ones. */
  adaptBatchNorm?: boolean;
  /**
   * ONNX Runtime's NCHWc block size (onnx/nchwc.ts) when the graphs run on its CPU provider: convolutions
   * then use its blocked-layout kernels. 0 or absent: plain ONNX convolutions (any provider).
   */
  nchwcBlock?: number;
  /** Also output `grad.<name>` (before clipping) for every trainable tensor: for tests. */
  outputGradients?: boolean;
}

export interface TrainParam {
  name: string;
  dims: number[];
  role: 'head' | 'backbone';
  /** Decoupled weight decay applies (weights, not biases or BatchNorm shifts and scales). */
  decay: boolean;
  init: Float32Array;
}

export interface TrainGraphs {
  step: OnnxModel;
  /** Inputs: x, params (and adapted statistics); outputs `features` [N, D] and `logits` [N, K]. */
  evaluate: OnnxModel;
  params: TrainParam[];
  statistics: { name: string; dims: number[]; init: Float32Array }[];
  /** Multiply–accumulates of one image's forward pass through the tail (for throughput figures). */
  forwardMacs: number;
}

/** Per-step scalar inputs; `bc1` and `bc2` are Adam's bias corrections 1 / (1 − βᵗ), multiplied in. */
export const STEP_SCALARS = ['lrHead', 'lrBackbone', 'weightDecay', 'clipNorm', 'bc1', 'bc2'] as const;
export const HEAD_WEIGHT = 'head.weight';
export const HEAD_BIAS = 'head.bias';

const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };
const SUPPORTED = new Set([
  'Conv',
  'BatchNormalization',
  'Relu',
  'Clip',
  'Add',
  'Concat',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'Flatten',
  'Identity',
]);

interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] */
  pads: [number, number, number, number];
  ceil: boolean;
}

function spatialOut(
  size: number,
  k: number,
  s: number,
  d: number,
  p0: number,
  p1: number,
  ceil: boolean,
): number {
  const span = size + p0 + p1 - d * (k - 1) - 1;
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

/** A conv's or pool's window with explicit pads (auto_pad resolved against the input size). */
function windowOf(n: OnnxNode, kernel: [number, number], h: number, w: number): Window {
  const strides = intsAttr(n, 'strides', [1, 1]) as [number, number];
  const dilations = intsAttr(n, 'dilations', [1, 1]) as [number, number];
  let pads = intsAttr(n, 'pads', [0, 0, 0, 0]) as [number, number, number, number];
  const auto = stringAttr(n, 'auto_pad', 'NOTSET');
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    const total = [h, w].map((size, a) => {
      const out = Math.ceil(size / (strides[a] as number));
      return Math.max(
        0,
        (out - 1) * (strides[a] as number) +
          ((kernel[a] as number) - 1) * (dilations[a] as number) +
          1 -
          size,
      );
    }) as [number, number];
    const small = total.map((t) => Math.floor(t / 2));
    const big = total.map((t, a) => t - (small[a] as number));
    pads =
      auto === 'SAME_UPPER'
        ? [small[0] as number, small[1] as number, big[0] as number, big[1] as number]
        : [big[0] as number, big[1] as number, small[0] as number, small[1] as number];
  } else if (auto === 'VALID') pads = [0, 0, 0, 0];
  return { kernel, strides, dilations, pads, ceil: intAttr(n, 'ceil_mode', 0) === 1 };
}

function unsupported(n: OnnxNode, why: string): FewShotError {
  return new FewShotError(
    'MODEL_INVALID',
    `Fine-tuning cannot train through ${n.opType} (${n.name}): ${why}.`,
  );
}

interface Analysed {
  nodes: OnnxNode[];
  shapes: Map<string, number[]>;
  windows: Map<OnnxNode, Window>;
  inits: Map<string, OnnxTensor>;
  forwardMacs: number;
  nodeMacs: Map<OnnxNode, number>;
}

/** Static shapes (without the batch) of every tail tensor, and each conv's and pool's explicit window. */
function analyse(spec: TrainGraphSpec): Analysed {
  const nodes = tailNodes(spec.model, spec.cut, spec.features);
  const inits = new Map(spec.model.graph.initializers.map((t) => [t.name, t]));
  const shapes = new Map<string, number[]>([[spec.cut, spec.inputShape]]);
  const windows = new Map<OnnxNode, Window>();
  let macs = 0;
  const nodeMacs = new Map<OnnxNode, number>();
  for (const n of nodes) {
    if (!SUPPORTED.has(n.opType)) throw unsupported(n, 'this operation has no training rule');
    const x = shapes.get(n.inputs[0] as string);
    if (!x) throw unsupported(n, `the shape of ${n.inputs[0]} is unknown`);
    const [c, h, w] = x as [number, number, number];
    let out: number[];
    switch (n.opType) {
      case 'Conv': {
        const weight = inits.get(n.inputs[1] as string);
        if (!weight) throw unsupported(n, 'its weights are not a constant of the graph');
        const [o, ipg, kh, kw] = weight.dims as [number, number, number, number];
        const group = intAttr(n, 'group', 1);
        if (group !== 1 && !(group === c && ipg === 1 && o === c))
          throw unsupported(n, 'grouped convolutions other than depthwise are not supported');
        const win = windowOf(n, [kh, kw], h, w);
        windows.set(n, win);
        out = [
          o,
          spatialOut(h, kh, win.strides[0], win.dilations[0], win.pads[0], win.pads[2], false),
          spatialOut(w, kw, win.strides[1], win.dilations[1], win.pads[1], win.pads[3], false),
        ];
        const m = (out[0] as number) * (out[1] as number) * (out[2] as number) * ipg * kh * kw;
        nodeMacs.set(n, m);
        macs += m;
        break;
      }
      case 'MaxPool':
      case 'AveragePool': {
        const [kh, kw] = intsAttr(n, 'kernel_shape', [1, 1]) as [number, number];
        const win = windowOf(n, [kh, kw], h, w);
        if (n.opType === 'AveragePool') {
          const padded = win.pads.some((p) => p > 0);
          if (padded && intAttr(n, 'count_include_pad', 0) === 0)
            throw unsupported(n, 'padding excluded from the average is not supported');
          if (win.ceil) throw unsupported(n, 'ceil_mode is not supported for average pooling');
        }
        windows.set(n, win);
        out = [
          c,
          spatialOut(h, kh, win.strides[0], win.dilations[0], win.pads[0], win.pads[2], win.ceil),
          spatialOut(w, kw, win.strides[1], win.dilations[1], win.pads[1], win.pads[3], win.ceil),
        ];
        break;
      }
      case 'Add': {
        const y = shapes.get(n.inputs[1] as string);
        if (!y || y.join() !== x.join()) throw unsupported(n, 'only same-shape additions are supported');
        out = x;
        break;
      }
      case 'Concat': {
        const axis = intAttr(n, 'axis', 1);
        if (x.length !== 3 || (axis !== 1 && axis !== -3))
          throw unsupported(n, 'only channel concatenation is supported');
        const parts = n.inputs.map((i) => shapes.get(i));
        if (parts.some((p) => !p)) throw unsupported(n, 'a concatenated input is not trained');
        out = [parts.reduce((s, p) => s + (p?.[0] as number), 0), h, w];
        break;
      }
      case 'GlobalAveragePool':
        out = [c, 1, 1];
        break;
      case 'Flatten':
        if (intAttr(n, 'axis', 1) !== 1) throw unsupported(n, 'only axis 1 is supported');
        out = [x.reduce((a, b) => a * b, 1)];
        break;
      default:
        out = x;
    }
    shapes.set(n.outputs[0] as string, out);
  }
  return { nodes, shapes, windows, inits, forwardMacs: macs, nodeMacs };
}

/** Multiply–accumulates of one image through the whole backbone and through the part after `cut`. */
export function stageMacs(
  model: OnnxModel,
  features: string,
  cut: string,
  imageShape: number[],
): { total: number; tail: number } {
  const input = model.graph.inputs[0]?.name as string;
  const a = analyse({ model, cut: input, features, inputShape: imageShape, classes: 2, optimizer: 'sgd' });
  const tail = new Set(tailNodes(model, cut, features));
  let t = 0;
  for (const [n, m] of a.nodeMacs) if (tail.has(n)) t += m;
  return { total: a.forwardMacs, tail: t };
}

function constantScalar(inits: Map<string, OnnxTensor>, name: string | undefined, fallback: number): number {
  if (!name) return fallback;
  const t = inits.get(name);
  if (!t) throw new FewShotError('MODEL_INVALID', `Clip bound ${name} is not a constant.`);
  return tensorFloats(t)[0] ?? fallback;
}

export function buildTrainGraphs(spec: TrainGraphSpec): TrainGraphs {
  const a = analyse(spec);
  const features = a.shapes.get(spec.features);
  if (!features || features.length !== 1)
    throw new FewShotError('MODEL_INVALID', `The features ${spec.features} are not a flat vector.`);
  const D = features[0] as number;
  const centre = spec.centre ?? new Float32Array(D);
  if (centre.length !== D)
    throw new FewShotError('INVALID_INPUT', `The centre has ${centre.length} values, the features ${D}.`);

  const params: TrainParam[] = [];
  const statistics: TrainGraphs['statistics'] = [];
  const seen = new Set<string>();
  const addParam = (name: string | undefined): void => {
    if (!name || seen.has(name)) return;
    const t = a.inits.get(name);
    if (!t) throw new FewShotError('MODEL_INVALID', `Missing initializer ${name}.`);
    seen.add(name);
    params.push({ name, dims: t.dims, role: 'backbone', decay: t.dims.length > 1, init: tensorFloats(t) });
  };
  for (const n of a.nodes) {
    if (n.opType === 'Conv') {
      addParam(n.inputs[1]);
      addParam(n.inputs[2]);
    } else if (n.opType === 'BatchNormalization') {
      addParam(n.inputs[1]);
      addParam(n.inputs[2]);
      if (spec.adaptBatchNorm)
        for (const s of [n.inputs[3], n.inputs[4]] as string[]) {
          if (statistics.some((x) => x.name === s)) continue;
          const t = a.inits.get(s) as OnnxTensor;
          statistics.push({ name: s, dims: t.dims, init: tensorFloats(t) });
        }
    }
  }
  params.push(
    {
      name: HEAD_WEIGHT,
      dims: [spec.classes, D],
      role: 'head',
      decay: true,
      init: new Float32Array(spec.classes * D),
    },
    {
      name: HEAD_BIAS,
      dims: [spec.classes],
      role: 'head',
      decay: false,
      init: new Float32Array(spec.classes),
    },
  );
  const trainable = new Set(params.map((p) => p.name));
  const stats = new Set(statistics.map((s) => s.name));
  return {
    step: emit({ ...spec, centre }, a, params, trainable, stats, true),
    evaluate: emit({ ...spec, centre }, a, params, trainable, stats, false),
    params,
    statistics,
    forwardMacs: a.forwardMacs,
  };
}

function emit(
  spec: TrainGraphSpec & { centre: Float32Array },
  a: Analysed,
  params: TrainParam[],
  trainable: Set<string>,
  stats: Set<string>,
  training: boolean,
): OnnxModel {
  const b = new GraphBuilder(training ? 'step' : 'eval');
  const [C, H, W] = spec.inputShape as [number, number, number];
  b.input('x', ['N', C, H, W]);
  if (spec.cut !== 'x') b.named('Identity', ['x'], [spec.cut]);
  for (const p of params) b.input(p.name, p.dims);
  for (const s of stats) b.input(s, a.inits.get(s)?.dims ?? null);
  // Constants the forward pass needs (BatchNorm statistics when frozen, clip bounds, …) stay initializers.
  for (const n of a.nodes)
    for (const i of n.inputs) {
      const t = i ? a.inits.get(i) : undefined;
      if (t && !trainable.has(t.name) && !stats.has(t.name)) b.initializer(t);
    }
  const axesNHW = b.ints([0, 2, 3]);
  const toChannel = (v: string): string => b.op('Unsqueeze', [v, axesNHW]); // [C] → [1, C, 1, 1]
  const zero = b.scalar(0);

  // A convolution whose only reader is a frozen BatchNorm runs with the BatchNorm folded into it (W·s and
  // (b − μ)·s + β, s = γ/σ, rebuilt from the trained values each step): the convolution's own output is
  // never formed, which saves the BatchNorm's pass and keeps one activation fewer alive for the backward
  // pass. Its gradients are taken through the folded weights (see the BatchNormalization rule below).
  const folded = new Map<
    OnnxNode,
    { conv: OnnxNode; weight: string; bias: string; s: string; invstd: string }
  >();
  const foldedConvs = new Set<OnnxNode>();
  if (!spec.adaptBatchNorm) {
    const readers = new Map<string, number>();
    for (const n of a.nodes) for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
    const producer = new Map(a.nodes.map((n) => [n.outputs[0] as string, n]));
    for (const n of a.nodes) {
      if (n.opType !== 'BatchNormalization') continue;
      const conv = producer.get(n.inputs[0] as string);
      const z = conv?.outputs[0] as string;
      if (!conv || conv.opType !== 'Conv' || readers.get(z) !== 1 || z === spec.features) continue;
      const [, gamma, beta, mean, variance] = n.inputs as [string, string, string, string, string];
      const eps = floatAttr(n, 'epsilon', 1e-5);
      const invstd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(eps)])])]);
      const sc = b.op('Mul', [gamma, invstd]);
      const weight = b.op('Mul', [conv.inputs[1] as string, b.op('Unsqueeze', [sc, b.ints([1, 2, 3])])]);
      const shift = conv.inputs[2] ? b.op('Sub', [conv.inputs[2], mean]) : b.op('Neg', [mean]);
      const bias = b.op('Add', [b.op('Mul', [shift, sc]), beta]);
      folded.set(n, { conv, weight, bias, s: sc, invstd });
      foldedConvs.add(conv);
    }
  }
  const foldOf = (conv: OnnxNode) => [...folded.entries()].find(([, f]) => f.conv === conv);
  // A Relu that is the only reader of a folded BatchNorm's output runs inside its convolution too.
  const fusedRelu = new Map<OnnxNode, OnnxNode>(); // convolution → Relu
  for (const [bn, f] of folded) {
    const u = bn.outputs[0] as string;
    const readers = a.nodes.filter((m) => m.inputs.includes(u));
    if (readers.length === 1 && readers[0]?.opType === 'Relu' && u !== spec.features)
      fusedRelu.set(f.conv, readers[0]);
  }

  // ---- forward ----
  const saved = new Map<OnnxNode, Record<string, string>>();
  const requires = new Set<string>(); // tensors that depend on a trained tensor
  for (const n of a.nodes) {
    const x = n.inputs[0] as string;
    const y = n.outputs[0] as string;
    if (n.inputs.some((i) => requires.has(i) || trainable.has(i))) requires.add(y);
    switch (n.opType) {
      case 'Conv': {
        const win = a.windows.get(n) as Window;
        const fold = foldedConvs.has(n) ? foldOf(n) : undefined;
        // Folded: this convolution writes the BatchNorm's output with the folded weights and shift (or,
        // with its Relu, the Relu's output).
        const relu = fusedRelu.get(n);
        const out = relu ? (relu.outputs[0] as string) : fold ? (fold[0].outputs[0] as string) : y;
        const activation = relu ? 'Relu' : undefined;
        const weight = fold ? fold[1].weight : (n.inputs[1] as string);
        const bias = fold ? fold[1].bias : n.inputs[2];
        if (training && batchGemm(n, win, a.shapes.get(y) as number[])) {
          // Small maps (ResNet's layer3 and layer4): the patches of the whole batch times the weights in one
          // matrix product, faster than the runtime's per-image products there; the patches are kept for
          // the weight gradient.
          const [cout, ho, wo] = a.shapes.get(y) as [number, number, number];
          const patches = im2col(b, x, a.shapes.get(x) as number[], [cout, ho, wo], win);
          const wr = b.op('Reshape', [weight, b.ints([cout, -1])]);
          const product = b.op('Reshape', [b.op('MatMul', [wr, patches]), b.ints([cout, ho, wo, -1])]);
          const nchwOut = b.op('Transpose', [product], { perm: [3, 0, 1, 2] });
          const shifted = bias ? b.op('Add', [nchwOut, toChannel(bias)]) : nchwOut;
          b.named(activation ?? 'Identity', [shifted], [out]);
          saved.set(n, { patches });
          break;
        }
        conv(
          b,
          [x, weight, ...(bias ? [bias] : [])],
          {
            kernel_shape: win.kernel,
            strides: win.strides,
            dilations: win.dilations,
            pads: win.pads,
            group: intAttr(n, 'group', 1),
          },
          [(a.shapes.get(x) as number[])[0] as number, (a.shapes.get(y) as number[])[0] as number],
          spec.nchwcBlock ?? 0,
          out,
          false,
          activation,
        );
        break;
      }
      case 'BatchNormalization': {
        if (folded.has(n)) break; // computed by its convolution
        const eps = floatAttr(n, 'epsilon', 1e-5);
        const [, scale, bias, mean, variance] = n.inputs as [string, string, string, string, string];
        if (training && spec.adaptBatchNorm) {
          const mu = b.op('ReduceMean', [x], { axes: [0, 2, 3], keepdims: 1 });
          const d = b.op('Sub', [x, mu]);
          const v = b.op('ReduceMean', [b.op('Mul', [d, d])], { axes: [0, 2, 3], keepdims: 1 });
          const invstd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [v, b.scalar(eps)])])]);
          const xhat = b.op('Mul', [d, invstd]);
          b.named('Add', [b.op('Mul', [xhat, toChannel(scale)]), toChannel(bias)], [y]);
          const k = floatAttr(n, 'momentum', 0.9);
          const flat = (t: string): string => b.op('Reshape', [t, b.ints([-1])]);
          const follow = (run: string, batch: string): string =>
            b.op('Add', [b.op('Mul', [run, b.scalar(k)]), b.op('Mul', [flat(batch), b.scalar(1 - k)])]);
          b.output(follow(mean, mu), `next.${mean}`, null);
          b.output(follow(variance, v), `next.${variance}`, null);
          saved.set(n, { xhat, invstd });
        } else {
          b.named('BatchNormalization', [x, scale, bias, mean, variance], [y], { epsilon: f(eps) });
        }
        break;
      }
      case 'Clip': {
        const lo = constantScalar(a.inits, n.inputs[1], floatAttr(n, 'min', -3.4e38));
        const hi = constantScalar(a.inits, n.inputs[2], floatAttr(n, 'max', 3.4e38));
        b.named('Clip', [x, b.scalar(lo), b.scalar(hi)], [y]);
        saved.set(n, { lo: b.scalar(lo), hi: b.scalar(hi) });
        break;
      }
      case 'MaxPool': {
        const win = a.windows.get(n) as Window;
        const indices = b.fresh('maxpool_indices');
        b.named('MaxPool', [x], [y, ...(training ? [indices] : [])], {
          kernel_shape: win.kernel,
          strides: win.strides,
          pads: win.pads,
          ceil_mode: win.ceil ? 1 : 0,
          ...(win.dilations.some((d) => d !== 1) ? { dilations: win.dilations } : {}),
        });
        saved.set(n, { indices });
        break;
      }
      case 'AveragePool': {
        const win = a.windows.get(n) as Window;
        b.named('AveragePool', [x], [y], {
          kernel_shape: win.kernel,
          strides: win.strides,
          pads: win.pads,
          count_include_pad: intAttr(n, 'count_include_pad', 0),
        });
        break;
      }
      case 'Flatten':
        b.named('Flatten', [x], [y], { axis: 1 });
        break;
      case 'Relu':
        if (![...fusedRelu.values()].includes(n)) b.named('Relu', [x], [y]);
        break;
      default:
        b.named(n.opType, n.inputs, [y], n.opType === 'Concat' ? { axis: 1 } : {});
    }
  }

  // ---- head ----
  const centre = b.floats(spec.centre, [spec.centre.length]);
  const c = b.op('Sub', [spec.features, centre]);
  const r = b.op('Max', [
    b.op('Sqrt', [b.op('ReduceSumSquare', [c], { axes: [1], keepdims: 1 })]),
    b.scalar(1e-12),
  ]);
  const q = b.op('Div', [c, r]);
  const logits = b.op('Gemm', [q, HEAD_WEIGHT, HEAD_BIAS], { transB: 1 });
  if (!training) {
    b.output(spec.features, 'features', ['N', spec.centre.length]);
    b.output(logits, 'logits', ['N', spec.classes]);
    return b.model('fewshot-evaluate');
  }

  const K = spec.classes;
  b.input('targets', ['N', K]);
  b.input('sampleWeights', ['N']);
  for (const s of STEP_SCALARS) b.input(s, []);
  for (const p of params) {
    b.input(`m.${p.name}`, p.dims);
    if (spec.optimizer === 'adam') b.input(`v.${p.name}`, p.dims);
  }
  const axis1 = b.ints([1]);
  const weightsCol = b.op('Unsqueeze', ['sampleWeights', axis1]);
  const logp = b.op('LogSoftmax', [logits], { axis: 1 });
  const perSample = b.op('ReduceSum', [b.op('Mul', ['targets', logp]), axis1], { keepdims: 0 });
  b.output(
    b.op('Neg', [b.op('ReduceSum', [b.op('Mul', [perSample, 'sampleWeights'])], { keepdims: 0 })]),
    'loss',
    [],
  );

  const grads = new Map<string, string[]>();
  const addGrad = (t: string, g: string): void => {
    grads.set(t, [...(grads.get(t) ?? []), g]);
  };
  const gradOf = (t: string): string | null => {
    const gs = grads.get(t);
    if (!gs?.length) return null;
    return gs.length === 1 ? (gs[0] as string) : b.op('Sum', gs);
  };
  // d loss / d logits = w · (p · Σt − t)
  const p = b.op('Softmax', [logits], { axis: 1 });
  const tsum = b.op('ReduceSum', ['targets', axis1], { keepdims: 1 });
  const dz = b.op('Mul', [b.op('Sub', [b.op('Mul', [p, tsum]), 'targets']), weightsCol]);
  addGrad(HEAD_WEIGHT, b.op('Gemm', [dz, q], { transA: 1 }));
  addGrad(HEAD_BIAS, b.op('ReduceSum', [dz, b.ints([0])], { keepdims: 0 }));
  const dq = b.op('MatMul', [dz, HEAD_WEIGHT]);
  const dot = b.op('ReduceSum', [b.op('Mul', [dq, q]), axis1], { keepdims: 1 });
  addGrad(spec.features, b.op('Div', [b.op('Sub', [dq, b.op('Mul', [q, dot])]), r]));

  // ---- backward through the tail ----
  const shapeOf = (t: string): number[] => a.shapes.get(t) as number[];
  for (const n of [...a.nodes].reverse()) {
    const y = n.outputs[0] as string;
    const gy = gradOf(y);
    if (!gy) continue;
    const x = n.inputs[0] as string;
    const needX = requires.has(x);
    switch (n.opType) {
      case 'Conv':
        convBackward(
          b,
          n,
          a.windows.get(n) as Window,
          shapeOf(x),
          shapeOf(y),
          gy,
          needX,
          addGrad,
          saved.get(n)?.patches,
          spec.nchwcBlock ?? 0,
        );
        break;
      case 'BatchNormalization': {
        const [, scale, bias, mean, variance] = n.inputs as [string, string, string, string, string];
        const f = folded.get(n);
        if (f) {
          // Through the folded convolution (z = W∗x + b, u = γ·(z − μ)/σ + β, s = γ/σ): with G the weight
          // gradient for dU, dW = s·G, db = s·Σ dU, dβ = Σ dU, dγ = (Σ W·G + (b − μ)·Σ dU)/σ, and the
          // input gradient is the folded convolution's own.
          const { conv: c, weight: wf, bias: bf } = f;
          const cx = c.inputs[0] as string;
          let g = '';
          let sum = '';
          convBackward(
            b,
            { ...c, inputs: [cx, wf, bf] },
            a.windows.get(c) as Window,
            shapeOf(cx),
            shapeOf(c.outputs[0] as string),
            gy,
            requires.has(cx),
            (t, v) => {
              if (t === wf) g = v;
              else if (t === bf) sum = v;
              else addGrad(t, v);
            },
            saved.get(c)?.patches,
            spec.nchwcBlock ?? 0,
          );
          const perOut = b.ints([1, 2, 3]);
          addGrad(c.inputs[1] as string, b.op('Mul', [g, b.op('Unsqueeze', [f.s, perOut])]));
          if (c.inputs[2]) addGrad(c.inputs[2], b.op('Mul', [sum, f.s]));
          addGrad(bias, sum);
          const shift = c.inputs[2] ? b.op('Sub', [c.inputs[2], mean]) : b.op('Neg', [mean]);
          const wg = b.op('ReduceSum', [b.op('Mul', [c.inputs[1] as string, g]), perOut], { keepdims: 0 });
          addGrad(scale, b.op('Mul', [b.op('Add', [wg, b.op('Mul', [shift, sum])]), f.invstd]));
          break;
        }
        const s = saved.get(n);
        const sumGy = b.op('ReduceSum', [gy, axesNHW], { keepdims: 0 });
        addGrad(bias, sumGy);
        if (s) {
          // Batch statistics: the gradient also flows through the batch mean and variance.
          const xhat = s.xhat as string;
          addGrad(scale, b.op('ReduceSum', [b.op('Mul', [gy, xhat]), axesNHW], { keepdims: 0 }));
          if (needX) {
            const dxhat = b.op('Mul', [gy, toChannel(scale)]);
            const m1 = b.op('ReduceMean', [dxhat], { axes: [0, 2, 3], keepdims: 1 });
            const m2 = b.op('ReduceMean', [b.op('Mul', [dxhat, xhat])], { axes: [0, 2, 3], keepdims: 1 });
            addGrad(
              x,
              b.op('Mul', [
                s.invstd as string,
                b.op('Sub', [b.op('Sub', [dxhat, m1]), b.op('Mul', [xhat, m2])]),
              ]),
            );
          }
        } else {
          const eps = floatAttr(n, 'epsilon', 1e-5);
          const invstd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(eps)])])]);
          // dγ = Σ dY·x̂ = (Σ dY·x − μ·Σ dY)/σ per channel: one product with the input instead of
          // forming x̂ = (x − μ)/σ, two passes over the whole activation fewer.
          const sumGyX = b.op('ReduceSum', [b.op('Mul', [gy, x]), axesNHW], { keepdims: 0 });
          addGrad(scale, b.op('Mul', [b.op('Sub', [sumGyX, b.op('Mul', [mean, sumGy])]), invstd]));
          if (needX) addGrad(x, b.op('Mul', [gy, toChannel(b.op('Mul', [scale, invstd]))]));
        }
        break;
      }
      case 'Relu':
        // The mask from the output (y > 0 exactly where x > 0), so the input need not live until the
        // backward pass; a product with the mask as floats runs at twice the speed of Where.
        if (needX)
          addGrad(x, b.op('Mul', [gy, b.op('Cast', [b.op('Greater', [y, zero])], { to: DataType.FLOAT })]));
        break;
      case 'Clip': {
        const s = saved.get(n) as Record<string, string>;
        const inside = b.op('And', [
          b.op('GreaterOrEqual', [x, s.lo as string]),
          b.op('LessOrEqual', [x, s.hi as string]),
        ]);
        if (needX) addGrad(x, b.op('Mul', [gy, b.op('Cast', [inside], { to: DataType.FLOAT })]));
        break;
      }
      case 'Add':
        for (const i of n.inputs) if (requires.has(i)) addGrad(i, gy);
        break;
      case 'Concat': {
        const sizes = n.inputs.map((i) => shapeOf(i)[0] as number);
        const parts = b.node('Split', [gy, b.ints(sizes)], { axis: 1 }, n.inputs.length);
        n.inputs.forEach((i, k) => {
          if (requires.has(i)) addGrad(i, parts[k] as string);
        });
        break;
      }
      case 'MaxPool': {
        if (!needX) break;
        // Each output's gradient goes to the input element that won its window (ORT's indices are flat over
        // the whole tensor); overlapping windows add up.
        const flat = b.ints([-1]);
        const zeros = b.op('ConstantOfShape', [b.op('Reshape', [b.op('Size', [x]), flat])], {
          value: { tensor: { name: 'value', dims: [1], dataType: 1, raw: new Uint8Array(4), unknown: [] } },
        });
        const indices = saved.get(n)?.indices as string;
        const scattered = b.op(
          'ScatterElements',
          [zeros, b.op('Reshape', [indices, flat]), b.op('Reshape', [gy, flat])],
          { axis: 0, reduction: 'add' },
        );
        addGrad(x, b.op('Reshape', [scattered, b.op('Shape', [x])]));
        break;
      }
      case 'AveragePool': {
        if (!needX) break;
        const win = a.windows.get(n) as Window;
        const [cx, h, w] = shapeOf(x) as [number, number, number];
        const [, ho, wo] = shapeOf(y) as [number, number, number];
        const [kh, kw] = win.kernel;
        const kernel = b.floats(new Float32Array(cx * kh * kw).fill(1 / (kh * kw)), [cx, 1, kh, kw]);
        addGrad(
          x,
          b.op('ConvTranspose', [gy, kernel], {
            kernel_shape: win.kernel,
            strides: win.strides,
            pads: win.pads,
            group: cx,
            output_padding: [
              h - (win.strides[0] * (ho - 1) + kh - win.pads[0] - win.pads[2]),
              w - (win.strides[1] * (wo - 1) + kw - win.pads[1] - win.pads[3]),
            ],
          }),
        );
        break;
      }
      case 'GlobalAveragePool': {
        if (!needX) break;
        const [, h, w] = shapeOf(x) as [number, number, number];
        addGrad(x, b.op('Expand', [b.op('Mul', [gy, b.scalar(1 / (h * w))]), b.op('Shape', [x])]));
        break;
      }
      case 'Flatten':
        if (needX) addGrad(x, b.op('Reshape', [gy, b.op('Shape', [x])]));
        break;
      case 'Identity':
        if (needX) addGrad(x, gy);
        break;
      default:
        throw unsupported(n, 'no training rule');
    }
  }

  // ---- clipping and the optimiser ----
  const g = new Map<string, string>();
  for (const prm of params) {
    const gp = gradOf(prm.name);
    if (!gp) throw new FewShotError('MODEL_INVALID', `${prm.name} does not reach the features.`);
    g.set(prm.name, gp);
    if (spec.outputGradients) b.output(gp, `grad.${prm.name}`, prm.dims);
  }
  const norm = b.op('Sqrt', [
    b.op(
      'Sum',
      params.map((prm) => b.op('ReduceSumSquare', [g.get(prm.name) as string], { keepdims: 0 })),
    ),
  ]);
  b.output(norm, 'gradNorm', []);
  const one = b.scalar(1);
  const clipScale = b.op('Min', [one, b.op('Div', ['clipNorm', b.op('Add', [norm, b.scalar(1e-6)])])]);
  const decayFactor = {
    head: b.op('Sub', [one, b.op('Mul', ['lrHead', 'weightDecay'])]),
    backbone: b.op('Sub', [one, b.op('Mul', ['lrBackbone', 'weightDecay'])]),
  };
  // Per-step scalars folded once, so each weight tensor sees as few passes as possible: the clip scale
  // goes into the moments' coefficients, Adam's bias corrections into the step size and epsilon
  // (lr·bc1·m / (√(bc2·v) + ε) = (lr·bc1/√bc2) · m / (√v + ε/√bc2)).
  const sqrtBc2 = b.op('Sqrt', ['bc2']);
  const epsHat = b.op('Div', [b.scalar(ADAM.epsilon), sqrtBc2]);
  const stepSize = {
    head: b.op('Div', [b.op('Mul', ['lrHead', 'bc1']), sqrtBc2]),
    backbone: b.op('Div', [b.op('Mul', ['lrBackbone', 'bc1']), sqrtBc2]),
  };
  const gCoef = b.op('Mul', [clipScale, b.scalar(1 - ADAM.beta1)]);
  const g2Coef = b.op('Mul', [b.op('Mul', [clipScale, clipScale]), b.scalar(1 - ADAM.beta2)]);
  for (const prm of params) {
    const grad = g.get(prm.name) as string;
    const decayed = prm.decay ? b.op('Mul', [prm.name, decayFactor[prm.role]]) : prm.name;
    let update: string;
    if (spec.optimizer === 'adam') {
      const m = b.op('Add', [
        b.op('Mul', [`m.${prm.name}`, b.scalar(ADAM.beta1)]),
        b.op('Mul', [grad, gCoef]),
      ]);
      const v = b.op('Add', [
        b.op('Mul', [`v.${prm.name}`, b.scalar(ADAM.beta2)]),
        b.op('Mul', [b.op('Mul', [grad, grad]), g2Coef]),
      ]);
      update = b.op('Mul', [b.op('Div', [m, b.op('Add', [b.op('Sqrt', [v]), epsHat])]), stepSize[prm.role]]);
      b.output(m, `next.m.${prm.name}`, prm.dims);
      b.output(v, `next.v.${prm.name}`, prm.dims);
    } else {
      const lr = prm.role === 'head' ? 'lrHead' : 'lrBackbone';
      const m = b.op('Add', [
        b.op('Mul', [`m.${prm.name}`, b.scalar(spec.momentum ?? 0.9)]),
        b.op('Mul', [grad, clipScale]),
      ]);
      update = b.op('Mul', [m, lr]);
      b.output(m, `next.m.${prm.name}`, prm.dims);
    }
    b.output(b.op('Sub', [decayed, update]), `next.${prm.name}`, prm.dims);
  }
  return b.model('fewshot-train-step');
}

/** Gradients of a convolution: the weights (and bias) always, the input when something upstream trains. */
function convBackward(
  b: GraphBuilder,
  n: OnnxNode,
  win: Window,
  xShape: number[],
  yShape: number[],
  gy: string,
  needX: boolean,
  addGrad: (t: string, g: string) => void,
  savedPatches?: string,
  block = 0,
): void {
  const [x, weight, bias] = n.inputs as [string, string, string | undefined];
  const [cin, h, w] = xShape as [number, number, number];
  const [cout, ho, wo] = yShape as [number, number, number];
  const [kh, kw] = win.kernel;
  const [sh, sw] = win.strides;
  const [dh, dw] = win.dilations;
  const [pt, pl, pb, pr] = win.pads;
  const group = intAttr(n, 'group', 1);
  const nchw = [0, 2, 3];
  if (bias) addGrad(bias, b.op('ReduceSum', [gy, b.ints(nchw)], { keepdims: 0 }));

  // Weight gradient.
  if (group === 1 && kh === 1 && kw === 1 && pt + pl + pb + pr === 0) {
    // A 1×1 convolution's weight gradient is one matrix product over every pixel of the batch.
    const xs =
      sh > 1 || sw > 1
        ? b.op('Slice', [
            x,
            b.ints([0, 0]),
            b.ints([sh * (ho - 1) + 1, sw * (wo - 1) + 1]),
            b.ints([2, 3]),
            b.ints([sh, sw]),
          ])
        : x;
    const rows = (t: string, c: number): string =>
      b.op('Reshape', [b.op('Transpose', [t], { perm: [1, 0, 2, 3] }), b.ints([c, -1])]);
    const dw1 = b.op('Gemm', [rows(gy, cout), rows(xs, cin)], { transB: 1 });
    addGrad(weight, b.op('Reshape', [dw1, b.ints([cout, cin, 1, 1])]));
  } else if (group === 1) {
    // The correlation of the input with the output gradient: a convolution over the batch axis, whose
    // stride is the forward dilation and whose dilation is the forward stride.
    // One large matrix product over the whole batch: dY as [O, Ho·Wo·N] times the input's patches as
    // [Ho·Wo·N, I·kh·kw], the patches gathered by one strided slice per kernel tap. (The correlation
    // written as a convolution over the batch axis runs as many thin products and reaches a third of
    // the machine's rate; this reaches the rate of a forward convolution.)
    if (savedPatches || ho * wo <= 196) {
      const patches = savedPatches ?? im2col(b, x, xShape, yShape, win);
      // Columns in the patches' order: [Ho, Wo, N].
      const rows = b.op('Reshape', [b.op('Transpose', [gy], { perm: [1, 2, 3, 0] }), b.ints([cout, -1])]);
      addGrad(
        weight,
        b.op('Reshape', [b.op('Gemm', [rows, patches], { transB: 1 }), b.ints([cout, cin, kh, kw])]),
      );
    } else {
      // Large maps: the runtime gathers the patches itself (a grouped convolution with one-hot kernels),
      // then one product per image, [I·k², Ho·Wo] × [Ho·Wo, O], summed over the batch.
      const k2 = kh * kw;
      const patches = patchGather(b, x, cin, win);
      const p3 = b.op('Reshape', [patches, b.ints([0, cin * k2, ho * wo])]);
      const dyT = b.op('Transpose', [b.op('Reshape', [gy, b.ints([0, cout, ho * wo])])], { perm: [0, 2, 1] });
      const dwT = b.op('ReduceSum', [b.op('MatMul', [p3, dyT]), b.ints([0])], { keepdims: 0 }); // [I·k², O]
      addGrad(
        weight,
        b.op('Reshape', [b.op('Transpose', [dwT], { perm: [1, 0] }), b.ints([cout, cin, kh, kw])]),
      );
    }
  } else {
    // Depthwise: the runtime gathers each channel's patches (a grouped convolution with one-hot kernels,
    // [N, C·k², Ho·Wo]), and one batched product per image and channel with the output gradient reads
    // them once — no per-tap window copies or products written out.
    const k2 = kh * kw;
    const patches = patchGather(b, x, cin, win);
    const p4 = b.op('Reshape', [patches, b.ints([0, cin, k2, ho * wo])]);
    const g4 = b.op('Reshape', [gy, b.ints([0, cout, ho * wo, 1])]);
    const perImage = b.op('MatMul', [p4, g4]); // [N, C, k², 1]
    addGrad(
      weight,
      b.op('Reshape', [
        b.op('ReduceSum', [perImage, b.ints([0])], { keepdims: 0 }),
        b.ints([cout, 1, kh, kw]),
      ]),
    );
  }

  if (!needX) return;
  const padT = dh * (kh - 1) - pt;
  const padL = dw * (kw - 1) - pl;
  const padB = h - ho + dh * (kh - 1) - padT;
  const padR = w - wo + dw * (kw - 1) - padL;
  const full = Math.min(padT, padL, padB, padR) >= 0;
  const stride1 = group === 1 && sh === 1 && sw === 1 && full;
  const small = batchGemm(n, win, yShape);
  if (stride1 && !small && block > 0 && cin % block === 0 && cout % block === 0) {
    // On the blocked kernels: dY convolved with the kernel turned by 180° and its channel axes swapped,
    // written straight into their filter layout [I/B, O/B, kh·kw, B_o, B_i] (one reversed slice, one
    // transpose). Not for small maps: their weights are large (layer4: 9 MiB), and the runtime's general
    // transpose moves them at ~1 GB/s, more than the product over dY's patches below costs.
    const reversed = b.op('Slice', [
      b.op('Reshape', [weight, b.ints([cout / block, block, cin / block, block, kh * kw])]),
      b.ints([-1]),
      b.ints([-(kh * kw) - 1]),
      b.ints([4]),
      b.ints([-1]),
    ]);
    const filter = b.op('Reshape', [
      b.op('Transpose', [reversed], { perm: [2, 0, 4, 1, 3] }),
      b.ints([cin, cout, kh, kw]),
    ]);
    const attrs = { kernel_shape: [kh, kw], pads: [padT, padL, padB, padR], dilations: [dh, dw] };
    addGrad(x, conv(b, [gy, filter], attrs, [cout, cin], block, undefined, true));
    return;
  }
  if (small && stride1) {
    // Small maps: the forward convolution of dY with the flipped, transposed kernel, as one batch-wide
    // product over dY's patches (gathered in flipped tap order, so the kernel needs only its two channel
    // axes swapped). Cheaper than scattering the patches' gradient back (col2im), which writes one
    // full-size map per kernel tap.
    const flipped: Window = {
      kernel: [kh, kw],
      strides: [1, 1],
      dilations: [dh, dw],
      pads: [padT, padL, padB, padR],
      ceil: false,
    };
    const patches = im2col(b, gy, yShape, xShape, flipped, true); // [O·k², H·W·N]
    const wt = b.op('Reshape', [
      b.op('Transpose', [b.op('Reshape', [weight, b.ints([cout, cin, kh * kw])])], { perm: [1, 0, 2] }),
      b.ints([cin, -1]),
    ]);
    const dxt = b.op('Reshape', [b.op('MatMul', [wt, patches]), b.ints([cin, h, w, -1])]);
    addGrad(x, b.op('Transpose', [dxt], { perm: [3, 0, 1, 2] }));
    return;
  }
  if (group > 1 && group === cin && group === cout && sh === 1 && sw === 1 && full) {
    // Depthwise with stride 1: the forward depthwise convolution of dY with each channel's kernel turned
    // by 180° (the runtime's transposed grouped convolution is many times slower).
    const flippedKernel = b.op('Reshape', [
      b.op('Slice', [
        b.op('Reshape', [weight, b.ints([cout, 1, kh * kw])]),
        b.ints([-1]),
        b.ints([-(kh * kw) - 1]),
        b.ints([2]),
        b.ints([-1]),
      ]),
      b.ints([cin, 1, kh, kw]),
    ]);
    addGrad(
      x,
      b.op('Conv', [gy, flippedKernel], {
        kernel_shape: [kh, kw],
        pads: [padT, padL, padB, padR],
        dilations: [dh, dw],
        group,
      }),
    );
    return;
  }
  // Input gradient: with stride 1 a forward convolution with the flipped, transposed kernel; otherwise the
  // transposed convolution.
  if (stride1) {
    // [O, C, kh, kw] → [C, O, kh, kw] with the kernel turned by 180°: one transpose of [O, C, kh·kw] and
    // one reversed slice of its last axis.
    const wt = b.op('Reshape', [
      b.op('Slice', [
        b.op('Transpose', [b.op('Reshape', [weight, b.ints([cout, cin, kh * kw])])], { perm: [1, 0, 2] }),
        b.ints([-1]),
        b.ints([-(kh * kw) - 1]),
        b.ints([2]),
        b.ints([-1]),
      ]),
      b.ints([cin, cout, kh, kw]),
    ]);
    addGrad(
      x,
      conv(
        b,
        [gy, wt],
        { kernel_shape: [kh, kw], pads: [padT, padL, padB, padR], dilations: [dh, dw] },
        [cout, cin],
        block,
      ),
    );
    return;
  }
  addGrad(
    x,
    b.op('ConvTranspose', [gy, weight], {
      kernel_shape: [kh, kw],
      strides: [sh, sw],
      dilations: [dh, dw],
      pads: [pt, pl, pb, pr],
      group,
      output_padding: [
        h - (sh * (ho - 1) + dh * (kh - 1) + 1 - pt - pb),
        w - (sw * (wo - 1) + dw * (kw - 1) + 1 - pl - pr),
      ],
    }),
  );
}

/**
 * A convolution (group 1), run by ONNX Runtime's blocked-layout kernels where `block` (nchwc.ts) divides
 * its output channels and its input has whole blocks or fewer channels than one: the input reordered into
 * blocks (one with fewer channels is read as it is), the weights [O, I, kh, kw] rearranged into the
 * kernels' [O/B, I/B, kh, kw, B_i, B_o] (or [O/B, I, kh, kw, B_o]), the output reordered back. These run at
 * the rate of inference, where the plain kernel with weights as inputs reaches 60–75 % of it; the reorders
 * cost a copy of the input and output. A plain Conv otherwise.
 */
function conv(
  b: GraphBuilder,
  inputs: string[],
  attrs: Record<string, AttrValue>,
  [cin, cout]: [number, number],
  block: number,
  output?: string,
  /** The weights come in the blocked kernels' layout already (they run there: the caller checked). */
  laidOut = false,
  /** Applied to the output: inside the blocked kernel, else as its own op. */
  activation?: 'Relu',
): string {
  const [x, w, ...bias] = inputs as [string, string, ...string[]];
  const [kh, kw] = attrs.kernel_shape as [number, number];
  const blocked =
    laidOut ||
    ((attrs.group ?? 1) === 1 && block > 0 && cout % block === 0 && (cin % block === 0 || cin < block));
  if (!blocked) {
    const out = output ?? b.fresh('Conv');
    if (activation) b.named(activation, [b.op('Conv', inputs, attrs)], [out]);
    else b.named('Conv', inputs, [out], attrs);
    return out;
  }
  const whole = cin % block === 0;
  const k2 = kh * kw;
  // [O, I, kh, kw] as [O/B, B_o, I/B, B_i, kh·kw] → [O/B, I/B, kh·kw, B_i, B_o]; with fewer input channels
  // than a block, [O/B, B_o, I·kh·kw] → [O/B, I·kh·kw, B_o].
  const filter = laidOut
    ? w
    : b.op('Reshape', [
        whole
          ? b.op('Transpose', [b.op('Reshape', [w, b.ints([cout / block, block, cin / block, block, k2])])], {
              perm: [0, 2, 4, 3, 1],
            })
          : b.op('Transpose', [b.op('Reshape', [w, b.ints([cout / block, block, cin * k2])])], {
              perm: [0, 2, 1],
            }),
        b.ints([cout, cin, kh, kw]),
      ]);
  const xb = whole ? b.opIn(NCHWC_DOMAIN, 'ReorderInput', [x]) : x;
  const yb = b.opIn(
    NCHWC_DOMAIN,
    'Conv',
    [xb, filter, ...bias],
    activation ? { ...attrs, activation } : attrs,
  );
  return b.opIn(NCHWC_DOMAIN, 'ReorderOutput', [yb], { channels: cout }, output);
}

/**
 * Every channel's patches as [N, C·kh·kw, Ho, Wo], gathered by the runtime: a grouped convolution whose
 * kernels are one-hot (tap t of channel c copies that tap into output channel c·k² + t).
 */
function patchGather(b: GraphBuilder, x: string, cin: number, win: Window): string {
  const [kh, kw] = win.kernel;
  const k2 = kh * kw;
  const onehot = new Float32Array(cin * k2 * k2);
  for (let i = 0; i < cin; i++) for (let t = 0; t < k2; t++) onehot[(i * k2 + t) * k2 + t] = 1;
  return b.op('Conv', [x, b.floats(onehot, [cin * k2, 1, kh, kw])], {
    kernel_shape: [kh, kw],
    strides: win.strides,
    dilations: win.dilations,
    pads: win.pads,
    group: cin,
  });
}

/** Convolutions on small maps run as batch-wide matrix products (ORT's per-image products are thin there). */
function batchGemm(n: OnnxNode, win: Window, yShape: number[]): boolean {
  const [, ho, wo] = yShape as [number, number, number];
  return intAttr(n, 'group', 1) === 1 && win.kernel[0] * win.kernel[1] > 1 && ho * wo <= 196;
}

/**
 * The input's patches as [I·kh·kw, Ho·Wo·N] (rows ordered as the weights' [I, kh, kw]; with `flip`, the
 * kernel taps in reverse order, as a convolution with the kernel turned by 180° reads them).
 */
function im2col(
  b: GraphBuilder,
  x: string,
  xShape: number[],
  yShape: number[],
  win: Window,
  flip = false,
): string {
  const [cin] = xShape as [number, number, number];
  const [, ho, wo] = yShape as [number, number, number];
  const [kh, kw] = win.kernel;
  const [sh, sw] = win.strides;
  const [dh, dw] = win.dilations;
  const [pt, pl, pb, pr] = win.pads;
  // [I, H, W, N] first: each kernel tap's window then copies runs of Wo·N values (not of Wo), and the
  // patches stack on a new axis without moving the large tensor again.
  const xt = b.op('Transpose', [x], { perm: [1, 2, 3, 0] });
  const padded = pt + pl + pb + pr > 0 ? b.op('Pad', [xt, b.ints([0, pt, pl, 0, 0, pb, pr, 0])]) : xt;
  const axis1 = b.ints([1]);
  const taps: string[] = [];
  for (let ti = 0; ti < kh; ti++)
    for (let tj = 0; tj < kw; tj++) {
      const i = flip ? kh - 1 - ti : ti;
      const j = flip ? kw - 1 - tj : tj;
      const tap = b.op('Slice', [
        padded,
        b.ints([i * dh, j * dw]),
        b.ints([i * dh + sh * (ho - 1) + 1, j * dw + sw * (wo - 1) + 1]),
        b.ints([1, 2]),
        b.ints([sh, sw]),
      ]);
      taps.push(b.op('Unsqueeze', [tap, axis1]));
    }
  const stacked = taps.length === 1 ? (taps[0] as string) : b.op('Concat', taps, { axis: 1 }); // [I, k², Ho, Wo, N]
  return b.op('Reshape', [stacked, b.ints([cin * kh * kw, -1])]);
}
