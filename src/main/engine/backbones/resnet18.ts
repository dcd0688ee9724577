// Builds an ONNX ResNet (18 by default; 34, 50, 101, 152) with torchvision's exact topology and names
// (conv1, bn1, layer1.0.conv1, …, fc) and seeded random weights; a torchvision state dict fills them. Used wherever the architecture matters and the weights do not: tests,
// benchmarks, and the fine-tuning engine's checks. BatchNormalization nodes are kept, not folded.

import { floatTensor, type OnnxModel, type OnnxNode, type OnnxTensor } from '../onnx/model.ts';
import { DataType } from '../onnx/model.ts';
import { Rng } from '../random.ts';

export interface ResNet18Options {
  seed?: number;
  numClasses?: number;
}

/** torchvision's ResNet depths: blocks per stage, and whether blocks are bottlenecks (1×1, 3×3, 1×1). */
export const RESNET_DEPTHS = {
  18: { blocks: [2, 2, 2, 2], bottleneck: false },
  34: { blocks: [3, 4, 6, 3], bottleneck: false },
  50: { blocks: [3, 4, 6, 3], bottleneck: true },
  101: { blocks: [3, 4, 23, 3], bottleneck: true },
  152: { blocks: [3, 8, 36, 3], bottleneck: true },
} as const;
export type ResNetDepth = keyof typeof RESNET_DEPTHS;

export interface ResNetOptions extends ResNet18Options {
  depth?: ResNetDepth;
}

export function buildResNet18(options: ResNet18Options = {}): OnnxModel {
  return buildResNet({ ...options, depth: 18 });
}

/** torchvision's ResNet topology (v1.5: a bottleneck's stride sits on its 3×3) with its exact names. */
export function buildResNet(options: ResNetOptions = {}): OnnxModel {
  const depth = options.depth ?? 18;
  const { blocks, bottleneck } = RESNET_DEPTHS[depth];
  const expansion = bottleneck ? 4 : 1;
  const rng = new Rng(options.seed ?? 0);
  const numClasses = options.numClasses ?? 1000;
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const ints = (name: string, v: number[]) => ({ name, type: 'ints' as const, ints: v });

  const conv = (
    name: string,
    input: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    pad: number,
  ): string => {
    const std = Math.sqrt(2 / (cout * k * k)); // kaiming_normal_, mode='fan_out', relu
    const w = new Float32Array(cout * cin * k * k);
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
    inits.push(floatTensor(`${name}.weight`, [cout, cin, k, k], w));
    const out = `${name}_output`;
    nodes.push({
      name,
      opType: 'Conv',
      domain: '',
      inputs: [input, `${name}.weight`],
      outputs: [out],
      attributes: [
        ints('dilations', [1, 1]),
        { name: 'group', type: 'int', i: 1 },
        ints('kernel_shape', [k, k]),
        ints('pads', [pad, pad, pad, pad]),
        ints('strides', [stride, stride]),
      ],
    });
    return out;
  };
  const bn = (name: string, input: string, c: number): string => {
    // Non-trivial statistics, so that tests see BatchNorm doing something.
    const gamma = new Float32Array(c).map(() => rng.uniform(0.5, 1.5));
    const beta = new Float32Array(c).map(() => rng.normal() * 0.1);
    const mean = new Float32Array(c).map(() => rng.normal() * 0.1);
    const variance = new Float32Array(c).map(() => rng.uniform(0.5, 1.5));
    inits.push(
      floatTensor(`${name}.weight`, [c], gamma),
      floatTensor(`${name}.bias`, [c], beta),
      floatTensor(`${name}.running_mean`, [c], mean),
      floatTensor(`${name}.running_var`, [c], variance),
    );
    const out = `${name}_output`;
    nodes.push({
      name,
      opType: 'BatchNormalization',
      domain: '',
      inputs: [input, `${name}.weight`, `${name}.bias`, `${name}.running_mean`, `${name}.running_var`],
      outputs: [out],
      attributes: [
        { name: 'epsilon', type: 'float', f: 1e-5 },
        { name: 'momentum', type: 'float', f: 0.9 },
      ],
    });
    return out;
  };
  const relu = (name: string, input: string): string => {
    const out = `${name}_output`;
    nodes.push({ name, opType: 'Relu', domain: '', inputs: [input], outputs: [out], attributes: [] });
    return out;
  };

  let x = conv('conv1', 'input', 3, 64, 7, 2, 3);
  x = relu('relu', bn('bn1', x, 64));
  nodes.push({
    name: 'maxpool',
    opType: 'MaxPool',
    domain: '',
    inputs: [x],
    outputs: ['maxpool_output'],
    attributes: [
      { name: 'ceil_mode', type: 'int', i: 0 },
      ints('dilations', [1, 1]),
      ints('kernel_shape', [3, 3]),
      ints('pads', [1, 1, 1, 1]),
      ints('strides', [2, 2]),
    ],
  });
  x = 'maxpool_output';
  let cin = 64;
  for (let layer = 1; layer <= 4; layer++) {
    const width = 64 * 2 ** (layer - 1);
    const cout = width * expansion;
    const stride = layer === 1 ? 1 : 2;
    for (let b = 0; b < (blocks[layer - 1] as number); b++) {
      const p = `layer${layer}.${b}`;
      const s = b === 0 ? stride : 1;
      const identity = x;
      let y: string;
      if (bottleneck) {
        y = relu(`${p}.relu`, bn(`${p}.bn1`, conv(`${p}.conv1`, x, cin, width, 1, 1, 0), width));
        y = relu(`${p}.relu_1`, bn(`${p}.bn2`, conv(`${p}.conv2`, y, width, width, 3, s, 1), width));
        y = bn(`${p}.bn3`, conv(`${p}.conv3`, y, width, cout, 1, 1, 0), cout);
      } else {
        y = relu(`${p}.relu`, bn(`${p}.bn1`, conv(`${p}.conv1`, x, cin, cout, 3, s, 1), cout));
        y = bn(`${p}.bn2`, conv(`${p}.conv2`, y, cout, cout, 3, 1, 1), cout);
      }
      let shortcut = identity;
      if (b === 0 && (s !== 1 || cin !== cout)) {
        shortcut = bn(`${p}.downsample.1`, conv(`${p}.downsample.0`, identity, cin, cout, 1, s, 0), cout);
      }
      nodes.push({
        name: `${p}.add`,
        opType: 'Add',
        domain: '',
        inputs: [y, shortcut],
        outputs: [`${p}.add_output`],
        attributes: [],
      });
      x = relu(`${p}.relu_${bottleneck ? 2 : 1}`, `${p}.add_output`);
      cin = cout;
    }
  }
  nodes.push({
    name: 'avgpool',
    opType: 'GlobalAveragePool',
    domain: '',
    inputs: [x],
    outputs: ['avgpool_output'],
    attributes: [],
  });
  nodes.push({
    name: 'flatten',
    opType: 'Flatten',
    domain: '',
    inputs: ['avgpool_output'],
    outputs: ['flatten_output'],
    attributes: [{ name: 'axis', type: 'int', i: 1 }],
  });
  const features = 512 * expansion;
  const bound = 1 / Math.sqrt(features);
  inits.push(
    floatTensor(
      'fc.weight',
      [numClasses, features],
      new Float32Array(numClasses * features).map(() => rng.uniform(-bound, bound)),
    ),
    floatTensor(
      'fc.bias',
      [numClasses],
      new Float32Array(numClasses).map(() => rng.uniform(-bound, bound)),
    ),
  );
  nodes.push({
    name: 'fc',
    opType: 'Gemm',
    domain: '',
    inputs: ['flatten_output', 'fc.weight', 'fc.bias'],
    outputs: ['logits'],
    attributes: [
      { name: 'alpha', type: 'float', f: 1 },
      { name: 'beta', type: 'float', f: 1 },
      { name: 'transB', type: 'int', i: 1 },
    ],
  });
  return {
    irVersion: 7,
    opsets: [{ domain: '', version: 13 }],
    producerName: `fewshot-lab resnet${depth} generator`,
    producerVersion: '1',
    docString: `ResNet${depth} (torchvision topology) with seeded random weights, seed ${options.seed ?? 0}. Not pretrained.`,
    metadata: { seed: String(options.seed ?? 0), pretrained: 'false' },
    graph: {
      name: `resnet${depth}`,
      nodes,
      initializers: inits,
      inputs: [{ name: 'input', elemType: DataType.FLOAT, shape: ['N', 3, 224, 224] }],
      outputs: [{ name: 'logits', elemType: DataType.FLOAT, shape: ['N', numClasses] }],
      valueInfo: [],
      unknown: [],
    },
    unknown: [],
  };
}
