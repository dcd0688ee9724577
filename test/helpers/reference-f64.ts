// A naive float64 reference for training graphs: the forward pass of an ONNX backbone from a cut tensor to
// its pooled features (NCHW, plain loops), then the fine-tuning head (centre, L2-normalise, linear) and the
// weighted cross-entropy. Written independently of the engine so finite differences of it can judge the
// gradients the generated training graph computes.

import {
  floatAttr,
  intAttr,
  intsAttr,
  stringAttr,
  tensorFloats,
  DataType,
  type OnnxModel,
  type OnnxNode,
} from '../../src/main/engine/onnx/model.ts';

export interface F64Tensor {
  shape: number[];
  data: Float64Array;
}

/**
 * Where the non-smooth ops (Relu, Clip, MaxPool) sit relative to their kinks: `pattern` records which
 * branch each element took (a finite difference is only valid when both sides take the same branches) and
 * `margin` is the nearest any value came to switching (float32 must not flip a branch float64 took).
 */
export interface Kinks {
  pattern: number[];
  margin: number;
}

export interface ReferenceOptions {
  cut: string;
  features: string;
  /** Overrides the model's initializers by name. */
  params?: Map<string, Float64Array>;
  /** 'running': inference with the running statistics; 'batch': biased statistics over N, H, W. */
  batchNorm?: 'running' | 'batch';
  kinks?: Kinks;
}

export function newKinks(): Kinks {
  return { pattern: [], margin: Infinity };
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function dims4(t: F64Tensor, op: string): [number, number, number, number] {
  if (t.shape.length !== 4) throw new Error(`reference: ${op} expects NCHW, got [${t.shape.join(', ')}]`);
  return t.shape as [number, number, number, number];
}

interface Window {
  out: number;
  /** Padding before the first element (after auto_pad is resolved). */
  head: number;
  tail: number;
}

/** Output size and padding along one axis, as the ONNX spec defines them for Conv and the pools. */
function window(
  node: OnnxNode,
  axis: number,
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  ceil: boolean,
): Window {
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  const span = dilation * (kernel - 1) + 1;
  if (autoPad === 'VALID') return { out: Math.floor((size - span) / stride) + 1, head: 0, tail: 0 };
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / stride);
    const total = Math.max(0, (out - 1) * stride + span - size);
    const small = Math.floor(total / 2);
    return autoPad === 'SAME_UPPER'
      ? { out, head: small, tail: total - small }
      : { out, head: total - small, tail: small };
  }
  const pads = intsAttr(node, 'pads', [0, 0, 0, 0]);
  const head = pads[axis] ?? 0;
  const tail = pads[axis + 2] ?? 0;
  const extent = size + head + tail - span;
  let out = (ceil ? Math.ceil(extent / stride) : Math.floor(extent / stride)) + 1;
  // With ceil_mode the last window must still start inside the input or its head padding.
  if (ceil && (out - 1) * stride >= size + head) out--;
  return { out, head, tail };
}

function conv(node: OnnxNode, x: F64Tensor, w: F64Tensor, b: F64Tensor | undefined): F64Tensor {
  const [N, C, H, W] = dims4(x, 'Conv');
  const [M, Cg, KH, KW] = dims4(w, 'Conv weight');
  const group = intAttr(node, 'group', 1);
  const [sh, sw] = intsAttr(node, 'strides', [1, 1]) as [number, number];
  const [dh, dw] = intsAttr(node, 'dilations', [1, 1]) as [number, number];
  if (Cg * group !== C || M % group !== 0)
    throw new Error(
      `reference: Conv ${node.name} has ${C} channels, weights [${w.shape.join(', ')}] and group ${group}`,
    );
  const wy = window(node, 0, H, KH, sh, dh, false);
  const wx = window(node, 1, W, KW, sw, dw, false);
  const OH = wy.out;
  const OW = wx.out;
  const out = new Float64Array(N * M * OH * OW);
  const perGroup = M / group;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      const g = Math.floor(m / perGroup);
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let s = b ? (b.data[m] as number) : 0;
          for (let c = 0; c < Cg; c++)
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * sh - wy.head + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * sw - wx.head + kx * dw;
                if (ix < 0 || ix >= W) continue;
                const xv = x.data[((n * C + g * Cg + c) * H + iy) * W + ix] as number;
                s += xv * (w.data[((m * Cg + c) * KH + ky) * KW + kx] as number);
              }
            }
          out[((n * M + m) * OH + oy) * OW + ox] = s;
        }
    }
  return { shape: [N, M, OH, OW], data: out };
}

function batchNorm(
  node: OnnxNode,
  x: F64Tensor,
  [scale, bias, mean, variance]: F64Tensor[],
  mode: 'running' | 'batch',
): F64Tensor {
  const [N, C, H, W] = dims4(x, 'BatchNormalization');
  if (!scale || !bias || !mean || !variance)
    throw new Error(`reference: BatchNormalization ${node.name} needs scale, B, mean and var`);
  const eps = floatAttr(node, 'epsilon', 1e-5);
  const hw = H * W;
  const out = new Float64Array(x.data.length);
  for (let c = 0; c < C; c++) {
    let mu = mean.data[c] as number;
    let va = variance.data[c] as number;
    if (mode === 'batch') {
      mu = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < hw; i++) mu += x.data[(n * C + c) * hw + i] as number;
      mu /= N * hw;
      va = 0;
      for (let n = 0; n < N; n++)
        for (let i = 0; i < hw; i++) va += ((x.data[(n * C + c) * hw + i] as number) - mu) ** 2;
      va /= N * hw;
    }
    const k = (scale.data[c] as number) / Math.sqrt(va + eps);
    for (let n = 0; n < N; n++)
      for (let i = 0; i < hw; i++) {
        const j = (n * C + c) * hw + i;
        out[j] = ((x.data[j] as number) - mu) * k + (bias.data[c] as number);
      }
  }
  return { shape: x.shape, data: out };
}

function relu(x: F64Tensor, kinks: Kinks | undefined): F64Tensor {
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = x.data[i] as number;
    out[i] = v > 0 ? v : 0;
    if (kinks) {
      kinks.pattern.push(v > 0 ? 1 : 0);
      kinks.margin = Math.min(kinks.margin, Math.abs(v));
    }
  }
  return { shape: x.shape, data: out };
}

function clip(x: F64Tensor, lo: number, hi: number, kinks: Kinks | undefined): F64Tensor {
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = x.data[i] as number;
    out[i] = v < lo ? lo : v > hi ? hi : v;
    if (kinks) {
      kinks.pattern.push(v < lo ? 0 : v > hi ? 2 : 1);
      kinks.margin = Math.min(kinks.margin, Math.abs(v - lo), Math.abs(v - hi));
    }
  }
  return { shape: x.shape, data: out };
}

function pool(node: OnnxNode, x: F64Tensor, kind: 'max' | 'avg', kinks: Kinks | undefined): F64Tensor {
  const [N, C, H, W] = dims4(x, node.opType);
  const [kh, kw] = intsAttr(node, 'kernel_shape', []) as [number, number];
  if (kh === undefined || kw === undefined) throw new Error(`reference: ${node.name} has no kernel_shape`);
  const [sh, sw] = intsAttr(node, 'strides', [1, 1]) as [number, number];
  const [dh, dw] = intsAttr(node, 'dilations', [1, 1]) as [number, number];
  const ceil = intAttr(node, 'ceil_mode', 0) === 1;
  const includePad = intAttr(node, 'count_include_pad', 0) === 1;
  const wy = window(node, 0, H, kh, sh, dh, ceil);
  const wx = window(node, 1, W, kw, sw, dw, ceil);
  const [OH, OW] = [wy.out, wx.out];
  const out = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++) {
        let best = -Infinity;
        let second = -Infinity;
        let arg = -1;
        let sum = 0;
        let count = 0;
        // Taps that fall in the declared padding count towards count_include_pad; taps past it never do.
        let padded = 0;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - wy.head + ky * dh;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - wx.head + kx * dw;
            const inPad = iy < H + wy.tail && ix < W + wx.tail;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
              if (inPad) padded++;
              continue;
            }
            const v = x.data[(nc * H + iy) * W + ix] as number;
            sum += v;
            count++;
            if (v > best) {
              second = best;
              best = v;
              arg = ky * kw + kx;
            } else if (v > second && v !== best) second = v;
          }
        }
        const o = (nc * OH + oy) * OW + ox;
        if (kind === 'max') {
          out[o] = best;
          if (kinks) {
            // Exact ties only arise among values a Relu or Clip saturated, whose gradient is zero anyway.
            kinks.pattern.push(arg);
            if (second > -Infinity) kinks.margin = Math.min(kinks.margin, best - second);
          }
        } else out[o] = sum / (includePad ? count + padded : count);
      }
  return { shape: [N, C, OH, OW], data: out };
}

function add(node: OnnxNode, a: F64Tensor, b: F64Tensor): F64Tensor {
  if (a.shape.join() !== b.shape.join())
    throw new Error(
      `reference: Add ${node.name} without broadcasting: [${a.shape.join(', ')}] + [${b.shape.join(', ')}]`,
    );
  return { shape: a.shape, data: a.data.map((v, i) => v + (b.data[i] as number)) };
}

function concat(node: OnnxNode, parts: F64Tensor[]): F64Tensor {
  const first = parts[0] as F64Tensor;
  const rank = first.shape.length;
  const axis = intAttr(node, 'axis', 1);
  if ((axis + rank) % rank !== 1) throw new Error(`reference: Concat ${node.name} on axis ${axis}`);
  const N = first.shape[0] as number;
  const inner = numel(first.shape.slice(2));
  const C = parts.reduce((s, p) => s + (p.shape[1] as number), 0);
  const out = new Float64Array(N * C * inner);
  for (let n = 0; n < N; n++) {
    let offset = 0;
    for (const p of parts) {
      const pc = p.shape[1] as number;
      for (let i = 0; i < pc * inner; i++)
        out[(n * C + offset) * inner + i] = p.data[n * pc * inner + i] as number;
      offset += pc;
    }
  }
  return { shape: [N, C, ...first.shape.slice(2)], data: out };
}

function globalAveragePool(x: F64Tensor): F64Tensor {
  const [N, C, H, W] = dims4(x, 'GlobalAveragePool');
  const out = new Float64Array(N * C);
  for (let i = 0; i < N * C; i++) {
    let s = 0;
    for (let j = 0; j < H * W; j++) s += x.data[i * H * W + j] as number;
    out[i] = s / (H * W);
  }
  return { shape: [N, C, 1, 1], data: out };
}

function scalarInput(env: Map<string, F64Tensor>, name: string | undefined, fallback: number): number {
  if (!name) return fallback;
  const t = env.get(name);
  if (!t || t.data.length !== 1) throw new Error(`reference: Clip bound ${name} is not a known scalar`);
  return t.data[0] as number;
}

/** The nodes computing `features` from `cut`, in graph order. */
export function tailOf(model: OnnxModel, cut: string, features: string): OnnxNode[] {
  const byOutput = new Map<string, OnnxNode>();
  for (const n of model.graph.nodes) for (const o of n.outputs) byOutput.set(o, n);
  const needed = new Set<OnnxNode>();
  const stack = [features];
  while (stack.length) {
    const name = stack.pop() as string;
    if (name === cut) continue;
    const n = byOutput.get(name);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  return model.graph.nodes.filter((n) => needed.has(n));
}

/** Runs the nodes from `cut` to `features` on `x` (the value of `cut`). */
export function referenceForward(
  model: OnnxModel,
  x: ArrayLike<number>,
  xShape: number[],
  options: ReferenceOptions,
): F64Tensor {
  const env = new Map<string, F64Tensor>();
  for (const t of model.graph.initializers)
    if (t.dataType === DataType.FLOAT)
      env.set(t.name, { shape: t.dims, data: Float64Array.from(tensorFloats(t)) });
  for (const [name, data] of options.params ?? []) {
    const known = env.get(name);
    if (known && known.data.length !== data.length)
      throw new Error(`reference: parameter ${name} has ${data.length} values, not ${known.data.length}`);
    if (known) env.set(name, { shape: known.shape, data });
  }
  if (x.length !== numel(xShape))
    throw new Error(`reference: x has ${x.length} values for [${xShape.join(', ')}]`);
  env.set(options.cut, { shape: xShape, data: Float64Array.from(x) });
  const get = (name: string | undefined, node: OnnxNode): F64Tensor => {
    const t = name ? env.get(name) : undefined;
    if (!t) throw new Error(`reference: ${node.opType} ${node.name} reads ${name}, which is not computed`);
    return t;
  };
  const mode = options.batchNorm ?? 'running';
  const kinks = options.kinks;
  for (const node of tailOf(model, options.cut, options.features)) {
    const x0 = get(node.inputs[0], node);
    let y: F64Tensor;
    switch (node.opType) {
      case 'Conv':
        y = conv(node, x0, get(node.inputs[1], node), node.inputs[2] ? get(node.inputs[2], node) : undefined);
        break;
      case 'BatchNormalization':
        y = batchNorm(
          node,
          x0,
          node.inputs.slice(1, 5).map((n) => get(n, node)),
          mode,
        );
        break;
      case 'Relu':
        y = relu(x0, kinks);
        break;
      case 'Clip': {
        // Opset < 11 holds the bounds as attributes, later opsets as optional scalar inputs.
        const lo = node.attributes.some((a) => a.name === 'min')
          ? floatAttr(node, 'min', -Infinity)
          : scalarInput(env, node.inputs[1], -Infinity);
        const hi = node.attributes.some((a) => a.name === 'max')
          ? floatAttr(node, 'max', Infinity)
          : scalarInput(env, node.inputs[2], Infinity);
        y = clip(x0, lo, hi, kinks);
        break;
      }
      case 'Add':
        y = add(node, x0, get(node.inputs[1], node));
        break;
      case 'Concat':
        y = concat(
          node,
          node.inputs.map((n) => get(n, node)),
        );
        break;
      case 'MaxPool':
        y = pool(node, x0, 'max', kinks);
        break;
      case 'AveragePool':
        y = pool(node, x0, 'avg', kinks);
        break;
      case 'GlobalAveragePool':
        y = globalAveragePool(x0);
        break;
      case 'Flatten': {
        const axis = intAttr(node, 'axis', 1);
        const a = axis < 0 ? axis + x0.shape.length : axis;
        y = { shape: [numel(x0.shape.slice(0, a)), numel(x0.shape.slice(a))], data: x0.data };
        break;
      }
      default:
        throw new Error(`reference: op ${node.opType} (${node.name}) is not implemented`);
    }
    env.set(node.outputs[0] as string, y);
  }
  const f = env.get(options.features);
  if (!f) throw new Error(`reference: ${options.features} is not computed from ${options.cut}`);
  return f;
}

/** Logits of the fine-tuning head: z = q·Wᵀ + b with q = (f − centre) / max(‖f − centre‖₂, 1e-12). */
export function referenceLogits(
  features: F64Tensor,
  centre: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
): F64Tensor {
  const [N, D] = features.shape as [number, number];
  const K = bias.length;
  if (centre.length !== D || weight.length !== K * D)
    throw new Error(`reference: head of ${K}×${D} with centre ${centre.length} and weight ${weight.length}`);
  const out = new Float64Array(N * K);
  const q = new Float64Array(D);
  for (let n = 0; n < N; n++) {
    let norm = 0;
    for (let d = 0; d < D; d++) {
      q[d] = (features.data[n * D + d] as number) - (centre[d] as number);
      norm += (q[d] as number) ** 2;
    }
    const scale = 1 / Math.max(Math.sqrt(norm), 1e-12);
    for (let k = 0; k < K; k++) {
      let s = bias[k] as number;
      for (let d = 0; d < D; d++) s += (q[d] as number) * scale * (weight[k * D + d] as number);
      out[n * K + k] = s;
    }
  }
  return { shape: [N, K], data: out };
}

/** −Σᵢ wᵢ Σₖ tᵢₖ log softmax(zᵢ)ₖ. */
export function referenceLoss(
  logits: F64Tensor,
  targets: ArrayLike<number>,
  sampleWeights: ArrayLike<number>,
): number {
  const [N, K] = logits.shape as [number, number];
  let loss = 0;
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, logits.data[n * K + k] as number);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp((logits.data[n * K + k] as number) - max);
    const lse = max + Math.log(sum);
    let row = 0;
    for (let k = 0; k < K; k++)
      row += (targets[n * K + k] as number) * ((logits.data[n * K + k] as number) - lse);
    loss -= (sampleWeights[n] as number) * row;
  }
  return loss;
}

export interface ReferenceBatch {
  x: ArrayLike<number>;
  xShape: number[];
  centre: ArrayLike<number>;
  targets: ArrayLike<number>;
  sampleWeights: ArrayLike<number>;
}

/** The training loss of one batch; `options.params` must hold 'head.weight' and 'head.bias'. */
export function referenceTrainLoss(
  model: OnnxModel,
  batch: ReferenceBatch,
  options: ReferenceOptions,
): number {
  const weight = options.params?.get('head.weight');
  const bias = options.params?.get('head.bias');
  if (!weight || !bias) throw new Error('reference: params need head.weight and head.bias');
  const f = referenceForward(model, batch.x, batch.xShape, options);
  return referenceLoss(referenceLogits(f, batch.centre, weight, bias), batch.targets, batch.sampleWeights);
}
