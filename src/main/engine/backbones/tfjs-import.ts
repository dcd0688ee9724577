// Converts a TF.js layers model (for example a Teachable Machine export) into an ONNX backbone: the
// innermost functional model (the pretrained network) becomes an NCHW ONNX graph ending in global
// average pooling. Supports the layers MobileNet-style networks use: ZeroPadding2D (folded into the next
// convolution), Conv2D, DepthwiseConv2D, BatchNormalization, ReLU (with max_value → Clip), Add.

import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../../shared/errors.ts';
import { DataType, floatTensor, type OnnxModel, type OnnxNode, type OnnxTensor } from '../onnx/model.ts';

interface KerasLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name?: string; layers?: KerasLayer[] };
  inbound_nodes?: unknown[];
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

/** The functional model with the most layers, searched depth-first: the pretrained backbone. */
function innermostModel(layer: KerasLayer): KerasLayer | null {
  let best: KerasLayer | null = null;
  const visit = (l: KerasLayer): void => {
    const layers = l.config.layers;
    if (Array.isArray(layers)) {
      if (
        (l.class_name === 'Model' || l.class_name === 'Functional') &&
        (!best || layers.length > (best.config.layers?.length ?? 0))
      )
        best = l;
      for (const c of layers) visit(c);
    }
  };
  visit(layer);
  return best;
}

function readWeights(
  dir: string,
  manifest: { paths: string[]; weights: WeightSpec[] }[],
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const group of manifest) {
    const buf = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(dir, p))));
    let off = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32' || w.quantization)
        throw new FewShotError(
          'MODEL_INVALID',
          `Weight ${w.name} is ${w.quantization ? 'quantized' : w.dtype}; only float32 weights are supported.`,
        );
      const n = w.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      new Uint8Array(data.buffer).set(buf.subarray(off, off + n * 4));
      off += n * 4;
      out.set(w.name, { shape: w.shape, data });
    }
  }
  return out;
}

/** Reorders a weight tensor: dims `from` of `shape` permuted by `perm`. */
function permute(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const out = new Float32Array(data.length);
  const outShape = perm.map((p) => shape[p] as number);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let rem = o;
    for (let k = outShape.length - 1; k >= 0; k--) {
      const d = outShape[k] as number;
      idx[perm[k] as number] = rem % d;
      rem = Math.floor(rem / d);
    }
    let src = 0;
    for (let k = 0; k < shape.length; k++) src += (idx[k] as number) * (strides[k] as number);
    out[o] = data[src] as number;
  }
  return out;
}

function samePads(size: number, k: number, s: number): [number, number] {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

export interface ConvertedBackbone {
  model: OnnxModel;
  inputSize: [number, number];
  featureDim: number;
  architecture: string;
}

export function convertTfjsLayers(modelJsonPath: string): ConvertedBackbone {
  const dir = path.dirname(modelJsonPath);
  let json: {
    modelTopology?: KerasLayer & { model_config?: KerasLayer };
    weightsManifest?: { paths: string[]; weights: WeightSpec[] }[];
  };
  try {
    json = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8')) as typeof json;
  } catch (e) {
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(modelJsonPath)} is not a TF.js model: ${(e as Error).message}`,
    );
  }
  const topology = json.modelTopology?.model_config ?? json.modelTopology;
  if (!topology || !json.weightsManifest)
    throw new FewShotError('MODEL_INVALID', 'Not a TF.js layers model (no topology or weights manifest).');
  const net = innermostModel(topology);
  const layers = net?.config.layers;
  if (!net || !layers)
    throw new FewShotError(
      'MODEL_INVALID',
      'No functional model (the pretrained network) inside this TF.js model.',
    );
  const weights = readWeights(dir, json.weightsManifest);
  const w = (layer: string, kind: string): { shape: number[]; data: Float32Array } => {
    const v = weights.get(`${layer}/${kind}`);
    if (!v) throw new FewShotError('MODEL_INVALID', `Missing weight ${layer}/${kind}.`);
    return v;
  };
  const outputs = (net.config as { output_layers?: [string, number, number][] }).output_layers;
  const outputName = outputs?.[0]?.[0];
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const shape = new Map<string, [number, number, number]>(); // C, H, W
  const pendingPad = new Map<string, [number, number, number, number]>(); // t, l, b, r not yet applied
  let inputSize: [number, number] = [224, 224];
  const inputOf = (l: KerasLayer): string[] => {
    const inbound = (l.inbound_nodes?.[0] ?? []) as [string, number, number][];
    return inbound.map((i) => i[0]);
  };
  const ints = (name: string, v: number[]) => ({ name, type: 'ints' as const, ints: v });

  for (const l of layers) {
    const name = l.config.name ?? l.name ?? '';
    const cfg = l.config as Record<string, unknown>;
    const [src] = inputOf(l);
    const inShape = src ? shape.get(src) : undefined;
    switch (l.class_name) {
      case 'InputLayer': {
        const b = cfg.batch_input_shape as (number | null)[];
        inputSize = [b[1] as number, b[2] as number];
        shape.set(name, [b[3] as number, b[1] as number, b[2] as number]);
        nodes.push({
          name: `${name}.identity`,
          opType: 'Identity',
          domain: '',
          inputs: ['input'],
          outputs: [name],
          attributes: [],
        });
        break;
      }
      case 'ZeroPadding2D': {
        const [[t, b], [le, r]] = cfg.padding as [[number, number], [number, number]];
        const prev = pendingPad.get(src as string) ?? [0, 0, 0, 0];
        pendingPad.set(name, [prev[0] + t, prev[1] + le, prev[2] + b, prev[3] + r]);
        const [c, h, wd] = inShape as [number, number, number];
        shape.set(name, [c, h + t + b, wd + le + r]);
        // The padded tensor is the input itself; the consumer adds the padding.
        nodes.push({
          name: `${name}.identity`,
          opType: 'Identity',
          domain: '',
          inputs: [src as string],
          outputs: [name],
          attributes: [],
        });
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        const depthwise = l.class_name === 'DepthwiseConv2D';
        const [kh, kw] = cfg.kernel_size as [number, number];
        const [sh, sw] = cfg.strides as [number, number];
        if ((cfg.dilation_rate as number[]).some((d) => d !== 1))
          throw new FewShotError('MODEL_INVALID', `${name}: dilated convolutions are not supported.`);
        const [c, h, wd] = inShape as [number, number, number];
        const pad = pendingPad.get(src as string);
        // Convolve the unpadded tensor, with the pending zero padding as the conv's own pads.
        const realSrc = pad
          ? (nodes.find((n) => n.outputs[0] === src)?.inputs[0] as string)
          : (src as string);
        const [ph, pw] = pad ? [h - pad[0] - pad[2], wd - pad[1] - pad[3]] : [h, wd];
        let pads: [number, number, number, number] = pad ?? [0, 0, 0, 0];
        if (cfg.padding === 'same') {
          const [pt, pb] = samePads(ph, kh, sh);
          const [pl, pr] = samePads(pw, kw, sw);
          pads = [pads[0] + pt, pads[1] + pl, pads[2] + pb, pads[3] + pr];
        }
        const kernel = w(name, depthwise ? 'depthwise_kernel' : 'kernel');
        let onnxW: Float32Array;
        let dims: number[];
        let group = 1;
        let cout: number;
        if (depthwise) {
          const mult = (cfg.depth_multiplier as number | undefined) ?? 1;
          onnxW = permute(kernel.data, kernel.shape, [2, 3, 0, 1]); // [cin, mult, kh, kw]
          cout = c * mult;
          dims = [cout, 1, kh, kw];
          group = c;
        } else {
          onnxW = permute(kernel.data, kernel.shape, [3, 2, 0, 1]); // [cout, cin, kh, kw]
          cout = kernel.shape[3] as number;
          dims = [cout, c, kh, kw];
        }
        inits.push(floatTensor(`${name}.weight`, dims, onnxW));
        const inputs = [realSrc, `${name}.weight`];
        if (cfg.use_bias) {
          inits.push(floatTensor(`${name}.bias`, [cout], w(name, 'bias').data));
          inputs.push(`${name}.bias`);
        }
        const act = cfg.activation as string;
        const out = act === 'linear' ? name : `${name}.pre`;
        nodes.push({
          name,
          opType: 'Conv',
          domain: '',
          inputs,
          outputs: [out],
          attributes: [
            ints('dilations', [1, 1]),
            { name: 'group', type: 'int', i: group },
            ints('kernel_shape', [kh, kw]),
            ints('pads', pads),
            ints('strides', [sh, sw]),
          ],
        });
        if (act === 'relu')
          nodes.push({
            name: `${name}.relu`,
            opType: 'Relu',
            domain: '',
            inputs: [out],
            outputs: [name],
            attributes: [],
          });
        else if (act !== 'linear')
          throw new FewShotError('MODEL_INVALID', `${name}: activation ${act} is not supported.`);
        const oh = Math.floor((ph + pads[0] + pads[2] - kh) / sh) + 1;
        const ow = Math.floor((pw + pads[1] + pads[3] - kw) / sw) + 1;
        shape.set(name, [cout, oh, ow]);
        break;
      }
      case 'BatchNormalization': {
        const c = (inShape as [number, number, number])[0];
        const gamma = cfg.scale === false ? { data: new Float32Array(c).fill(1) } : w(name, 'gamma');
        const beta = cfg.center === false ? { data: new Float32Array(c) } : w(name, 'beta');
        inits.push(
          floatTensor(`${name}.weight`, [c], gamma.data),
          floatTensor(`${name}.bias`, [c], beta.data),
          floatTensor(`${name}.running_mean`, [c], w(name, 'moving_mean').data),
          floatTensor(`${name}.running_var`, [c], w(name, 'moving_variance').data),
        );
        nodes.push({
          name,
          opType: 'BatchNormalization',
          domain: '',
          inputs: [
            src as string,
            `${name}.weight`,
            `${name}.bias`,
            `${name}.running_mean`,
            `${name}.running_var`,
          ],
          outputs: [name],
          attributes: [{ name: 'epsilon', type: 'float', f: (cfg.epsilon as number | undefined) ?? 1e-3 }],
        });
        shape.set(name, inShape as [number, number, number]);
        break;
      }
      case 'ReLU': {
        const max = cfg.max_value as number | null | undefined;
        if (max !== null && max !== undefined) {
          inits.push(
            floatTensor(`${name}.min`, [], Float32Array.of(0)),
            floatTensor(`${name}.max`, [], Float32Array.of(max)),
          );
          nodes.push({
            name,
            opType: 'Clip',
            domain: '',
            inputs: [src as string, `${name}.min`, `${name}.max`],
            outputs: [name],
            attributes: [],
          });
        } else
          nodes.push({
            name,
            opType: 'Relu',
            domain: '',
            inputs: [src as string],
            outputs: [name],
            attributes: [],
          });
        shape.set(name, inShape as [number, number, number]);
        break;
      }
      case 'Add': {
        const ins = inputOf(l);
        nodes.push({ name, opType: 'Add', domain: '', inputs: ins, outputs: [name], attributes: [] });
        shape.set(name, inShape as [number, number, number]);
        break;
      }
      default:
        throw new FewShotError(
          'MODEL_INVALID',
          `The layer type ${l.class_name} (${name}) is not supported in a TF.js backbone.`,
        );
    }
  }
  const last = outputName ?? layers[layers.length - 1]?.config.name ?? '';
  const featureDim = (shape.get(last) as [number, number, number])[0];
  nodes.push(
    {
      name: 'avgpool',
      opType: 'GlobalAveragePool',
      domain: '',
      inputs: [last],
      outputs: ['avgpool_output'],
      attributes: [],
    },
    {
      name: 'flatten',
      opType: 'Flatten',
      domain: '',
      inputs: ['avgpool_output'],
      outputs: ['features'],
      attributes: [{ name: 'axis', type: 'int', i: 1 }],
    },
  );
  const names = new Set(layers.map((l) => l.config.name));
  const architecture = names.has('block_16_project') && names.has('Conv1') ? 'mobilenet_v2' : 'custom';
  return {
    model: {
      irVersion: 7,
      opsets: [{ domain: '', version: 13 }],
      producerName: 'FewShot Lab (from a TF.js layers model)',
      producerVersion: '1',
      docString: `Converted from ${path.basename(dir)}/${path.basename(modelJsonPath)}: the functional model ${net.config.name ?? ''}.`,
      metadata: {},
      graph: {
        name: String(net.config.name ?? 'backbone'),
        nodes,
        initializers: inits,
        inputs: [{ name: 'input', elemType: DataType.FLOAT, shape: ['N', 3, inputSize[0], inputSize[1]] }],
        outputs: [{ name: 'features', elemType: DataType.FLOAT, shape: ['N', featureDim] }],
        valueInfo: [],
        unknown: [],
      },
      unknown: [],
    },
    inputSize,
    featureDim,
    architecture,
  };
}
