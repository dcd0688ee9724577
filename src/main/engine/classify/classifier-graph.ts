// One ONNX graph for a trained model: the backbone cut to its pooled features, then the head written as
// elementary ONNX ops — Sub(centre), the L2 normalisation as Mul/MatMul/Sqrt/Div, Gemm, Mul(1/T),
// Softmax — so any ONNX consumer (ONNX Runtime, OpenCV DNN, the usual converters) gives the app's
// probabilities. The fitted head also travels in the model's metadata, for import back into a
// project.

import type { Head } from './heads.ts';
import { serializeHead } from './serialize.ts';
import { DataType, floatTensor, type OnnxModel, type OnnxNode } from '../onnx/model.ts';

export const HEAD_METADATA_KEY = 'fewshot.head';

export function classifierGraph(
  features: OnnxModel,
  head: Head,
  metadata: Record<string, string> = {},
): OnnxModel {
  const out = features.graph.outputs[0];
  if (!out) throw new Error('the feature graph has no output');
  const C = head.classes.length;
  const D = head.centre.length;
  const nodes: OnnxNode[] = [...features.graph.nodes];
  let f = out.name;
  // A pooled 4-D output ([N, D, 1, 1]) becomes [N, D].
  nodes.push({
    name: 'head.flatten',
    opType: 'Flatten',
    domain: '',
    inputs: [f],
    outputs: ['head.flat'],
    attributes: [{ name: 'axis', type: 'int', i: 1 }],
  });
  f = 'head.flat';
  let weight: Float32Array;
  let bias: Float32Array;
  if (head.kind === 'linear') {
    weight = Float32Array.from(head.weights);
    bias = Float32Array.from(head.bias);
  } else {
    // −‖q − p‖² = 2 q·p − ‖p‖² − ‖q‖², and ‖q‖ = 1 after normalisation: a Gemm with W = 2P, b = −‖p‖² − 1.
    weight = new Float32Array(C * D);
    bias = new Float32Array(C);
    head.prototypes.forEach((p, c) => {
      let sq = 0;
      for (let k = 0; k < D; k++) {
        weight[c * D + k] = 2 * (p[k] as number);
        sq += (p[k] as number) ** 2;
      }
      bias[c] = -sq - 1;
    });
  }
  const inits = [
    floatTensor('head.centre', [1, D], Float32Array.from(head.centre)),
    floatTensor('head.weight', [C, D], weight),
    floatTensor('head.bias', [C], bias),
    floatTensor('head.inv_temperature', [1], Float32Array.of(1 / head.temperature)),
    floatTensor('head.ones', [D, 1], new Float32Array(D).fill(1)),
    floatTensor('head.ones_row', [1, D], new Float32Array(D).fill(1)),
    floatTensor('head.tiny', [1], Float32Array.of(1e-24)),
  ];
  nodes.push(
    {
      name: 'head.centre_sub',
      opType: 'Sub',
      domain: '',
      inputs: [f, 'head.centre'],
      outputs: ['head.centred'],
      attributes: [],
    },
    // ‖c‖ as Sqrt(MatMul(MatMul(c·c, 1), 1ᵀ) + 1e-24): the sum of squares as a product with a ones column, which
    // every consumer runs (LpNormalization and ReduceSumSquare are not universally supported).
    {
      name: 'head.square',
      opType: 'Mul',
      domain: '',
      inputs: ['head.centred', 'head.centred'],
      outputs: ['head.squared'],
      attributes: [],
    },
    {
      name: 'head.sumsq',
      opType: 'MatMul',
      domain: '',
      inputs: ['head.squared', 'head.ones'],
      outputs: ['head.sumsq'],
      attributes: [],
    },
    {
      // Spread back to [N, D] by a product too: some consumers (OpenCV 4.6) cannot broadcast a computed
      // [N, 1] against [N, D].
      name: 'head.spread',
      opType: 'MatMul',
      domain: '',
      inputs: ['head.sumsq', 'head.ones_row'],
      outputs: ['head.sumsq_rows'],
      attributes: [],
    },
    {
      name: 'head.sumsq_safe',
      opType: 'Add',
      domain: '',
      inputs: ['head.sumsq_rows', 'head.tiny'],
      outputs: ['head.sumsq_safe'],
      attributes: [],
    },
    {
      name: 'head.norm',
      opType: 'Sqrt',
      domain: '',
      inputs: ['head.sumsq_safe'],
      outputs: ['head.norm'],
      attributes: [],
    },
    {
      name: 'head.l2norm',
      opType: 'Div',
      domain: '',
      inputs: ['head.centred', 'head.norm'],
      outputs: ['head.normalised'],
      attributes: [],
    },
    {
      name: 'head.gemm',
      opType: 'Gemm',
      domain: '',
      inputs: ['head.normalised', 'head.weight', 'head.bias'],
      outputs: ['logits'],
      attributes: [{ name: 'transB', type: 'int', i: 1 }],
    },
    {
      name: 'head.temperature',
      opType: 'Mul',
      domain: '',
      inputs: ['logits', 'head.inv_temperature'],
      outputs: ['head.scaled'],
      attributes: [],
    },
    {
      name: 'head.softmax',
      opType: 'Softmax',
      domain: '',
      inputs: ['head.scaled'],
      outputs: ['probabilities'],
      attributes: [{ name: 'axis', type: 'int', i: 1 }],
    },
  );
  const batch = features.graph.inputs[0]?.shape?.[0] ?? 'N';
  return {
    ...features,
    opsets: features.opsets.map((o) => (o.domain === '' ? { ...o, version: Math.max(o.version, 13) } : o)),
    producerName: 'FewShot Lab',
    metadata: {
      ...features.metadata,
      ...metadata,
      [HEAD_METADATA_KEY]: serializeHead(head).toString('base64'),
    },
    graph: {
      ...features.graph,
      nodes,
      initializers: [...features.graph.initializers, ...inits],
      outputs: [
        { name: 'probabilities', elemType: DataType.FLOAT, shape: [batch, C] },
        { name: 'logits', elemType: DataType.FLOAT, shape: [batch, C] },
      ],
    },
  };
}
