// What an exported model.onnx may contain: only operators that the common ONNX consumers accept (the
// app's backbones are opset 13) — ONNX Runtime on every platform, OpenCV DNN (4.x), TensorRT, Core ML and TF.js converters. Graphs
// from older versions of the app are rewritten into that vocabulary (LpNormalization into Mul / MatMul /
// Sqrt / Div; Identity nodes removed); anything else stops the export with the operator's name, so a
// new operator cannot slip into a bundle unnoticed.

import { FewShotError } from '../../../shared/errors.ts';
import { floatTensor, type OnnxModel, type OnnxNode, type OnnxTensor } from '../onnx/model.ts';

/** The one list of operators an exported graph may use (default domain). */
export const PORTABLE_OPS: readonly string[] = [
  'Add',
  'AveragePool',
  'BatchNormalization',
  'Clip',
  'Concat',
  'Conv',
  'Div',
  'Flatten',
  'Gemm',
  'GlobalAveragePool',
  'MatMul',
  'MaxPool',
  'Mul',
  'Relu',
  'Reshape',
  'Softmax',
  'Sqrt',
  'Sub',
];

const PORTABLE_OPSET = 13;

function intAttr(n: OnnxNode, name: string, fallback: number): number {
  const a = n.attributes.find((x) => x.name === name);
  return a && a.type === 'int' ? a.i : fallback;
}

/** The feature size along axis 1 of `tensor`, from the graph's declared shapes or a Gemm/MatMul after it. */
function widthOf(model: OnnxModel, tensor: string): number | null {
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  for (const n of model.graph.nodes) {
    if (!n.inputs.includes(tensor)) continue;
    const w = inits.get(n.inputs[1] ?? '');
    if (n.opType === 'Gemm' && w) return intAttr(n, 'transB', 0) ? (w.dims[1] ?? null) : (w.dims[0] ?? null);
    if (n.opType === 'Sub' && w) return w.dims[w.dims.length - 1] ?? null;
  }
  return null;
}

/** Rewrites a graph into the portable vocabulary; returns it with the operator types it uses. */
export function portableGraph(model: OnnxModel): { model: OnnxModel; ops: string[]; opset: number } {
  const nodes: OnnxNode[] = [];
  const extra: OnnxTensor[] = [];
  // Identity nodes: their consumers read the input directly (a graph output keeps its name).
  const outputs = new Set(model.graph.outputs.map((o) => o.name));
  const alias = new Map<string, string>();
  for (const n of model.graph.nodes)
    if (n.opType === 'Identity' && n.inputs[0] && !outputs.has(n.outputs[0] as string))
      alias.set(n.outputs[0] as string, n.inputs[0]);
  const resolve = (t: string): string => {
    let x = t;
    while (alias.has(x)) x = alias.get(x) as string;
    return x;
  };
  for (const original of model.graph.nodes) {
    if (original.opType === 'Identity' && alias.has(original.outputs[0] as string)) continue;
    const n = { ...original, inputs: original.inputs.map((i) => (i ? resolve(i) : i)) };
    if (n.opType === 'LpNormalization') {
      const axis = intAttr(n, 'axis', -1);
      const p = intAttr(n, 'p', 2);
      const x = n.inputs[0] as string;
      const width = widthOf(model, n.outputs[0] as string);
      if (p !== 2 || (axis !== 1 && axis !== -1) || width === null)
        throw new FewShotError(
          'INTERNAL',
          `Cannot rewrite ${n.name} (LpNormalization p=${p}, axis=${axis}).`,
        );
      const k = n.name || 'lpnorm';
      extra.push(
        floatTensor(`${k}.ones`, [width, 1], new Float32Array(width).fill(1)),
        floatTensor(`${k}.ones_row`, [1, width], new Float32Array(width).fill(1)),
        floatTensor(`${k}.tiny`, [1], Float32Array.of(1e-24)),
      );
      const op = (opType: string, inputs: string[], out: string): OnnxNode => ({
        name: `${k}.${out}`,
        opType,
        domain: '',
        inputs,
        outputs: [`${k}.${out}`],
        attributes: [],
      });
      nodes.push(
        op('Mul', [x, x], 'squared'),
        op('MatMul', [`${k}.squared`, `${k}.ones`], 'sumsq'),
        op('MatMul', [`${k}.sumsq`, `${k}.ones_row`], 'sumsq_rows'),
        op('Add', [`${k}.sumsq_rows`, `${k}.tiny`], 'sumsq_safe'),
        op('Sqrt', [`${k}.sumsq_safe`], 'norm'),
        { ...op('Div', [x, `${k}.norm`], 'div'), outputs: n.outputs },
      );
      continue;
    }
    nodes.push(n);
  }
  const ops = [...new Set(nodes.map((n) => n.opType))].sort();
  const foreign = nodes.filter((n) => n.domain !== '' && n.domain !== 'ai.onnx');
  const unknown = ops.filter((o) => !PORTABLE_OPS.includes(o));
  if (foreign.length || unknown.length)
    throw new FewShotError(
      'INTERNAL',
      `The exported graph would use ${[...unknown, ...foreign.map((n) => `${n.domain}.${n.opType}`)].join(', ')}, which not every ONNX consumer accepts; nothing was written. Allowed: ${PORTABLE_OPS.join(', ')}.`,
    );
  const opset = model.opsets.find((o) => o.domain === '')?.version ?? PORTABLE_OPSET;
  return {
    opset,
    model: {
      ...model,
      graph: { ...model.graph, nodes, initializers: [...model.graph.initializers, ...extra] },
    },
    ops,
  };
}
