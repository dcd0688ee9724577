// Graph surgery on decoded ONNX models: find the pooled features before a classifier and cut there.

import { FewShotError } from '../../../shared/errors.ts';
import type { OnnxModel, OnnxNode, OnnxValueInfo } from './model.ts';
import { DataType, floatTensor } from './model.ts';

const CLASSIFIER_OPS = new Set(['Gemm', 'MatMul', 'Add', 'Softmax', 'LogSoftmax', 'Sigmoid', 'Identity']);
const POOL_OPS = new Set(['Flatten', 'Reshape', 'GlobalAveragePool', 'ReduceMean', 'Squeeze']);

export function producers(model: OnnxModel): Map<string, OnnxNode> {
  const m = new Map<string, OnnxNode>();
  for (const n of model.graph.nodes) for (const o of n.outputs) m.set(o, n);
  return m;
}

/**
 * The tensor holding pooled features: walks back from the graph's first output through classifier ops
 * (Gemm/MatMul/Add/Softmax) to the first pooling/flatten output. Returns the output itself when the graph
 * ends in pooling already (a "no top" export).
 */
export function findFeatureTensor(model: OnnxModel): string {
  const out = model.graph.outputs[0]?.name;
  if (!out) throw new FewShotError('MODEL_INVALID', 'The model has no output.');
  const byOutput = producers(model);
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  let name = out;
  let sawClassifier = false;
  for (let guard = 0; guard < 16; guard++) {
    const node = byOutput.get(name);
    if (!node) break;
    if (POOL_OPS.has(node.opType)) return name;
    if (!CLASSIFIER_OPS.has(node.opType)) {
      if (sawClassifier) return name;
      break;
    }
    sawClassifier = true;
    const dataInput = node.inputs.find((i) => i !== '' && !inits.has(i));
    if (!dataInput) break;
    name = dataInput;
  }
  throw new FewShotError(
    'MODEL_INVALID',
    'Cannot find pooled features in this model: expected a global pooling or flatten before its classifier.',
  );
}

/**
 * A copy of the model whose only output is `tensor`, with every node and weight it does not need removed;
 * with `from`, the graph starts at that tensor instead (fed as its input), so the copy is the part between.
 */
export function cutAt(
  model: OnnxModel,
  tensor: string,
  dim: number | null = null,
  from: string | null = null,
): OnnxModel {
  const byOutput = producers(model);
  const needed = new Set<OnnxNode>();
  const stack = [tensor];
  const seen = new Set<string>();
  while (stack.length) {
    const t = stack.pop() as string;
    if (seen.has(t)) continue;
    seen.add(t);
    const n = t === from ? undefined : byOutput.get(t);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  const nodes = model.graph.nodes.filter((n) => needed.has(n));
  const initializers = model.graph.initializers.filter((t) => seen.has(t.name));
  const batch = model.graph.inputs[0]?.shape?.[0] ?? 'N';
  const output: OnnxValueInfo = {
    name: tensor,
    elemType: DataType.FLOAT,
    shape: dim === null ? null : [batch, dim],
  };
  const inits = new Set(initializers.map((t) => t.name));
  const inputs = model.graph.inputs.filter((i) => seen.has(i.name) || inits.has(i.name));
  if (from !== null && nodes.some((n) => n.outputs.includes(from)))
    throw new FewShotError('MODEL_INVALID', `"${from}" comes from a node the part after it also needs.`);
  if (from !== null && !seen.has(from))
    throw new FewShotError('MODEL_INVALID', `${tensor} does not depend on "${from}".`);
  const bypass = inputs.find((i) => i.name !== from && !inits.has(i.name));
  if (from !== null && bypass)
    throw new FewShotError(
      'MODEL_INVALID',
      `${tensor} depends on "${bypass.name}" other than through "${from}".`,
    );
  if (from !== null && !inputs.some((i) => i.name === from)) {
    const known = model.graph.valueInfo.find((v) => v.name === from);
    inputs.unshift(known ?? { name: from, elemType: DataType.FLOAT, shape: null });
  }
  return {
    ...model,
    graph: {
      ...model.graph,
      nodes,
      initializers,
      inputs,
      outputs: [output],
      valueInfo: model.graph.valueInfo.filter(
        (v) => seen.has(v.name) && v.name !== tensor && v.name !== from,
      ),
    },
  };
}

/** The non-initializer inputs: what a caller must feed. */
export function dataInputs(model: OnnxModel): OnnxValueInfo[] {
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs.filter((i) => !inits.has(i.name));
}

/** A copy of the model with new values for some float initializers; every other one stays byte-identical. */
export function withInitializers(model: OnnxModel, values: Map<string, Float32Array>): OnnxModel {
  return {
    ...model,
    graph: {
      ...model.graph,
      initializers: model.graph.initializers.map((t) => {
        const v = values.get(t.name);
        return v ? floatTensor(t.name, t.dims, v) : t;
      }),
    },
  };
}
