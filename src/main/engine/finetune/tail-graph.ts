// The trainable tail of an ONNX backbone as TensorFlow.js ops (NHWC): everything between a cut tensor
// (the frozen prefix's output, or the image for full fine-tuning) and the pooled features. Supports the
// ops ResNet18 and SqueezeNet use; trained weights are written back into a copy of the ONNX graph.

import { FewShotError } from '../../../shared/errors.ts';
import { withInitializers } from '../onnx/graph.ts';
import { lastStageCut, tailNodes } from './stages.ts';
import { floatAttr, intAttr, intsAttr, tensorFloats, type OnnxModel, type OnnxNode } from '../onnx/model.ts';
import { tf } from './tf-backend.ts';

export { lastStageCut, tailNodes };

export interface TailGraph {
  cut: string;
  features: string;
  nodes: OnnxNode[];
  /** Trainable tensors by ONNX initializer name (conv weights as HWIO). */
  variables: Map<string, tf.Variable>;
  /** `training` with adapted BatchNorm: normalise by the batch and update the running statistics. */
  forward(x: tf.Tensor4D, training?: boolean): tf.Tensor2D;
  /** BatchNorm running statistics, when they adapt (written back with the weights). */
  statistics: Map<string, tf.Variable>;
  /** Names of depthwise convolution weights (held as [kh, kw, C, 1]). */
  depthwise: Set<string>;
  dispose(): void;
}

export function buildTail(
  model: OnnxModel,
  cut: string,
  features: string,
  options: { adaptBatchNorm?: boolean } = {},
): TailGraph {
  const nodes = tailNodes(model, cut, features);
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  const variables = new Map<string, tf.Variable>();
  const constants = new Map<string, tf.Tensor>();
  const statistics = new Map<string, tf.Variable>();
  const depthwise = new Set<string>();
  // Depthwise weights [C, 1, kh, kw] are held as TF.js's [kh, kw, C, 1].
  const trainable = (name: string, shape: number[], layout: 'conv' | 'depthwise' | 'plain'): tf.Variable => {
    const existing = variables.get(name);
    if (existing) return existing;
    const t = inits.get(name);
    if (!t) throw new FewShotError('MODEL_INVALID', `Missing initializer ${name}.`);
    const raw = tf.tensor(tensorFloats(t), t.dims);
    const v = tf.variable(
      layout === 'plain' ? raw : tf.transpose(raw, layout === 'conv' ? [2, 3, 1, 0] : [2, 3, 0, 1]),
      true,
      `t:${name}`,
    );
    if (layout === 'depthwise') depthwise.add(name);
    raw.dispose();
    void shape;
    variables.set(name, v);
    return v;
  };
  const constant = (name: string): tf.Tensor => {
    let c = constants.get(name);
    if (!c) {
      const t = inits.get(name);
      if (!t) throw new FewShotError('MODEL_INVALID', `Missing initializer ${name}.`);
      c = tf.tensor(tensorFloats(t), t.dims);
      constants.set(name, c);
    }
    return c;
  };
  for (const n of nodes) {
    if (n.opType === 'Conv') {
      const group = intAttr(n, 'group', 1);
      const weight = inits.get(n.inputs[1] as string);
      if (group !== 1 && !(weight && weight.dims[1] === 1 && weight.dims[0] === group))
        throw new FewShotError(
          'MODEL_INVALID',
          `Grouped convolution (${n.name}) other than depthwise is not supported for fine-tuning.`,
        );
      trainable(n.inputs[1] as string, [], group === 1 ? 'conv' : 'depthwise');
      if (n.inputs[2]) trainable(n.inputs[2], [], 'plain');
    } else if (n.opType === 'BatchNormalization') {
      trainable(n.inputs[1] as string, [], 'plain');
      trainable(n.inputs[2] as string, [], 'plain');
      for (const stat of [n.inputs[3] as string, n.inputs[4] as string]) {
        const c = constant(stat);
        if (options.adaptBatchNorm && !statistics.has(stat))
          statistics.set(stat, tf.variable(c, false, `s:${stat}`));
      }
    } else if (
      !['Relu', 'Clip', 'Add', 'Concat', 'MaxPool', 'GlobalAveragePool', 'Flatten', 'Identity'].includes(
        n.opType,
      )
    ) {
      throw new FewShotError(
        'MODEL_INVALID',
        `The op ${n.opType} (${n.name}) is not supported for fine-tuning.`,
      );
    }
  }

  function forward(x: tf.Tensor4D, training = false): tf.Tensor2D {
    const env = new Map<string, tf.Tensor>([[cut, x]]);
    const get = (name: string | undefined): tf.Tensor => {
      const v = name === undefined ? undefined : env.get(name);
      if (!v) throw new Error(`tail: missing tensor ${name}`);
      return v;
    };
    for (const n of nodes) {
      const a = get(n.inputs[0]) as tf.Tensor4D;
      let y: tf.Tensor;
      switch (n.opType) {
        case 'Conv': {
          const [pt, pl, pb, pr] = intsAttr(n, 'pads', [0, 0, 0, 0]) as [number, number, number, number];
          const [sh, sw] = intsAttr(n, 'strides', [1, 1]) as [number, number];
          const w = variables.get(n.inputs[1] as string) as tf.Variable as unknown as tf.Tensor4D;
          const pad: [[number, number], [number, number], [number, number], [number, number]] = [
            [0, 0],
            [pt, pb],
            [pl, pr],
            [0, 0],
          ];
          const padding = pt + pb + pl + pr === 0 ? 'valid' : pad;
          y = depthwise.has(n.inputs[1] as string)
            ? tf.depthwiseConv2d(a, w, [sh, sw], padding)
            : tf.conv2d(a, w, [sh, sw], padding);
          if (n.inputs[2]) y = tf.add(y, variables.get(n.inputs[2]) as tf.Variable);
          break;
        }
        case 'BatchNormalization': {
          const eps = floatAttr(n, 'epsilon', 1e-5);
          const [g, b] = [variables.get(n.inputs[1] as string), variables.get(n.inputs[2] as string)] as [
            tf.Variable,
            tf.Variable,
          ];
          const runMean = statistics.get(n.inputs[3] as string);
          const runVar = statistics.get(n.inputs[4] as string);
          let m: tf.Tensor;
          let v: tf.Tensor;
          if (training && runMean && runVar) {
            // Adapted statistics: this batch's, while the running ones follow with ONNX's momentum.
            const moments = tf.moments(a, [0, 1, 2]);
            m = moments.mean;
            v = moments.variance;
            const k = floatAttr(n, 'momentum', 0.9);
            runMean.assign(tf.add(tf.mul(runMean, k), tf.mul(m, 1 - k)));
            runVar.assign(tf.add(tf.mul(runVar, k), tf.mul(v, 1 - k)));
          } else {
            m = runMean ?? (constants.get(n.inputs[3] as string) as tf.Tensor);
            v = runVar ?? (constants.get(n.inputs[4] as string) as tf.Tensor);
          }
          y = tf.add(tf.mul(tf.sub(a, m), tf.mul(g, tf.rsqrt(tf.add(v, eps)))), b);
          break;
        }
        case 'Identity':
          y = a;
          break;
        case 'Relu':
          y = tf.relu(a);
          break;
        case 'Clip': {
          const lo = n.inputs[1]
            ? (tensorFloats(inits.get(n.inputs[1]) as never)[0] ?? -Infinity)
            : floatAttr(n, 'min', -Infinity);
          const hi = n.inputs[2]
            ? (tensorFloats(inits.get(n.inputs[2]) as never)[0] ?? Infinity)
            : floatAttr(n, 'max', Infinity);
          y = tf.clipByValue(a, lo, hi);
          break;
        }
        case 'Add':
          y = tf.add(a, get(n.inputs[1]));
          break;
        case 'Concat': {
          const axis = intAttr(n, 'axis', 1);
          const nhwcAxis = [0, 3, 1, 2][axis < 0 ? axis + 4 : axis] as number;
          y = tf.concat(n.inputs.map(get), nhwcAxis);
          break;
        }
        case 'MaxPool': {
          const [kh, kw] = intsAttr(n, 'kernel_shape', [1, 1]) as [number, number];
          const [sh, sw] = intsAttr(n, 'strides', [1, 1]) as [number, number];
          const [pt, pl, pb0, pr0] = intsAttr(n, 'pads', [0, 0, 0, 0]) as [number, number, number, number];
          let pb = pb0;
          let pr = pr0;
          if (intAttr(n, 'ceil_mode', 0) === 1) {
            const [, h, w] = a.shape;
            pb += (sh - ((h + pt + pb - kh) % sh)) % sh;
            pr += (sw - ((w + pl + pr - kw) % sw)) % sw;
          }
          const padded =
            pt + pb + pl + pr > 0
              ? tf.pad(
                  a,
                  [
                    [0, 0],
                    [pt, pb],
                    [pl, pr],
                    [0, 0],
                  ],
                  -1e30,
                )
              : a;
          y = tf.maxPool(padded, [kh, kw], [sh, sw], 'valid');
          break;
        }
        case 'GlobalAveragePool':
          y = tf.mean(a, [1, 2], true);
          break;
        case 'Flatten':
          if (a.shape[1] !== 1 || a.shape[2] !== 1)
            throw new Error('tail: Flatten of a spatial map is not supported');
          y = tf.reshape(a, [a.shape[0], -1]);
          break;
        default:
          throw new Error(`tail: ${n.opType}`);
      }
      env.set(n.outputs[0] as string, y);
    }
    return get(features) as tf.Tensor2D;
  }

  return {
    cut,
    features,
    nodes,
    variables,
    forward,
    statistics,
    depthwise,
    dispose: () => {
      for (const v of statistics.values()) v.dispose();
      for (const v of variables.values()) v.dispose();
      for (const c of constants.values()) c.dispose();
    },
  };
}

/** A copy of the model with the tail's trained values in place of its initializers; nothing else changes. */
export async function writeBack(model: OnnxModel, tail: TailGraph): Promise<OnnxModel> {
  const values = new Map<string, Float32Array>();
  for (const [name, v] of [...tail.variables, ...tail.statistics]) {
    const t = v.rank === 4 ? tf.transpose(v, tail.depthwise.has(name) ? [2, 3, 0, 1] : [3, 2, 0, 1]) : v; // → OIHW
    values.set(name, Float32Array.from(await t.data()));
    if (t !== v) t.dispose();
  }
  return withInitializers(model, values);
}
