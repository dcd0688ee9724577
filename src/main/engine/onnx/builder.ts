// A small builder for ONNX graphs written by the app itself (training steps, evaluation graphs): one call
// per node, fresh tensor names, constants as initializers, attributes typed by how they are written.

import {
  DataType,
  floatTensor,
  int64Tensor,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './model.ts';

/** An attribute value: integers and integer lists as numbers, floats wrapped with `f()`, strings as text. */
export type AttrValue = number | number[] | string | { float: number } | { tensor: OnnxTensor };

export function f(value: number): { float: number } {
  return { float: value };
}

function toAttribute(name: string, v: AttrValue): OnnxAttribute {
  if (typeof v === 'number') return { name, type: 'int', i: v };
  if (typeof v === 'string') return { name, type: 'string', s: v };
  if (Array.isArray(v)) return { name, type: 'ints', ints: v };
  if ('float' in v) return { name, type: 'float', f: v.float };
  return { name, type: 'tensor', t: v.tensor };
}

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  private counter = 0;
  private readonly constants = new Map<string, string>();

  constructor(private readonly prefix = 'g') {}

  fresh(hint: string): string {
    return `${this.prefix}/${hint}_${this.counter++}`;
  }

  /** One node; returns its output names (`outputs` of them, named after the op). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs = 1): string[] {
    const outs = Array.from({ length: outputs }, () => this.fresh(opType));
    this.named(opType, inputs, outs, attrs);
    return outs;
  }

  /** A one-output node of an operator set other than ONNX's own (`domain`, version 1). */
  opIn(
    domain: string,
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    output?: string,
  ): string {
    const out = output ?? this.fresh(opType);
    this.named(opType, inputs, [out], attrs, domain);
    return out;
  }

  /** A one-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, attrs)[0] as string;
  }

  /** A node writing to given output names (forward ops that keep the backbone's tensor names). */
  named(
    opType: string,
    inputs: string[],
    outputs: string[],
    attrs: Record<string, AttrValue> = {},
    domain = '',
  ): void {
    this.nodes.push({
      name: this.fresh(`${opType}_node`),
      opType,
      domain,
      inputs,
      outputs,
      attributes: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
  }

  /** A float32 constant (shared when the same values are asked for twice). */
  floats(values: number[] | Float32Array, dims: number[] = [values.length]): string {
    const key = `f${dims.join('x')}:${Array.from(values).join(',')}`;
    const known = values.length <= 16 ? this.constants.get(key) : undefined;
    if (known) return known;
    const name = this.fresh('const');
    this.initializers.push(floatTensor(name, dims, Float32Array.from(values)));
    if (values.length <= 16) this.constants.set(key, name);
    return name;
  }

  scalar(value: number): string {
    return this.floats([value], []);
  }

  ints(values: number[], dims: number[] = [values.length]): string {
    const key = `i${dims.join('x')}:${values.join(',')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = this.fresh('ints');
    this.initializers.push(int64Tensor(name, dims, values));
    this.constants.set(key, name);
    return name;
  }

  initializer(t: OnnxTensor): void {
    if (!this.initializers.some((i) => i.name === t.name)) this.initializers.push(t);
  }

  input(name: string, shape: (number | string)[] | null): string {
    this.inputs.push({ name, elemType: DataType.FLOAT, shape });
    return name;
  }

  /** Marks `tensor` as a graph output named `name`. */
  output(tensor: string, name = tensor, shape: (number | string)[] | null = null): void {
    this.pending.push({ tensor, name });
    this.outputs.push({ name, elemType: DataType.FLOAT, shape });
  }

  private pending: { tensor: string; name: string }[] = [];

  /** Output names in place: the producing node writes the output itself, so the runtime copies nothing. */
  private applyOutputs(): void {
    const renamed = new Set<string>();
    const inputs = new Set(this.inputs.map((i) => i.name));
    for (const { tensor, name } of this.pending) {
      if (tensor === name) continue;
      const producer = this.nodes.find((n) => n.outputs.includes(tensor));
      if (producer && !renamed.has(tensor) && !inputs.has(tensor)) {
        renamed.add(tensor);
        producer.outputs = producer.outputs.map((o) => (o === tensor ? name : o));
        for (const n of this.nodes) n.inputs = n.inputs.map((i) => (i === tensor ? name : i));
        for (const p of this.pending) if (p.tensor === tensor && p.name !== name) p.tensor = name;
      } else this.named('Identity', [tensor], [name]);
    }
    this.pending = [];
  }

  model(name: string, opset = 17, metadata: Record<string, string> = {}): OnnxModel {
    this.applyOutputs();
    // Constants made but never read (an evaluation graph skips the backward pass) are left out.
    const used = new Set(this.nodes.flatMap((n) => n.inputs));
    for (const o of this.outputs) used.add(o.name);
    const initializers = this.initializers.filter((t) => used.has(t.name));
    return {
      irVersion: 8,
      opsets: [
        { domain: '', version: opset },
        ...[...new Set(this.nodes.map((n) => n.domain).filter((d) => d !== ''))].map((domain) => ({
          domain,
          version: 1,
        })),
      ],
      producerName: 'fewshot-lab',
      producerVersion: '1',
      docString: '',
      metadata,
      graph: {
        name,
        nodes: this.nodes,
        initializers,
        inputs: this.inputs,
        outputs: this.outputs,
        valueInfo: [],
        unknown: [],
      },
      unknown: [],
    };
  }
}
