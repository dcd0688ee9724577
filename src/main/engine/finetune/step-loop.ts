// Several training steps in one runtime call: the step graph becomes the body of an ONNX Loop whose
// loop-carried values are the weights and optimiser state. onnxruntime-node copies every output into a
// fresh JavaScript buffer, and a step's outputs are three copies of the trained weights (weights, Adam's
// two moments: ResNet18's layer4 is 100 MB); in a Loop they stay in the runtime between steps and cross
// over once per call. The body is the step graph itself, so K steps in one call compute what K calls do.

import { FewShotError } from '../../../shared/errors.ts';
import {
  DataType,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxValueInfo,
} from '../onnx/model.ts';
import { ort, type QueuedSession } from '../onnx/session.ts';
import type { CachedInput } from './prefix.ts';
import { STEP_SCALARS } from './train-graph.ts';

/** Inputs fed once per step: stacked along a new leading axis, `steps.<name>`, one slice per step. */
export const LOOP_PREFIX = 'steps.';

export interface StepLoop {
  model: OnnxModel;
  /** Step inputs whose `next.<name>` the step writes: carried from step to step. */
  carried: string[];
  /** Step inputs that change every step; the loop's inputs are `steps.<name>`, [K, ...the step's shape]. */
  perStep: string[];
  /** Step outputs other than the carried values, stacked per step: [K, ...]. */
  stacked: string[];
}

const rename = (nodes: OnnxNode[], map: Map<string, string>): OnnxNode[] =>
  nodes.map((n) => ({
    ...n,
    inputs: n.inputs.map((i) => map.get(i) ?? i),
    outputs: n.outputs.map((o) => map.get(o) ?? o),
  }));

/**
 * Wraps a step graph (inputs `perStep` and carried values, outputs `next.<carried>` and per-step values
 * such as the loss) in a Loop that runs as many steps as `steps.<perStep[0]>` has slices. Inputs the step
 * only reads (frozen statistics) are read from the outer graph by every step.
 */
export function loopSteps(step: OnnxModel, perStep: string[]): StepLoop {
  const g = step.graph;
  const inputNames = new Set(g.inputs.map((i) => i.name));
  for (const p of perStep)
    if (!inputNames.has(p)) throw new FewShotError('MODEL_INVALID', `The step graph has no input ${p}.`);
  const outputNames = new Set(g.outputs.map((o) => o.name));
  const carried = g.inputs.map((i) => i.name).filter((n) => outputNames.has(`next.${n}`));
  const carriedOut = new Set(carried.map((n) => `next.${n}`));
  const stacked = g.outputs.map((o) => o.name).filter((n) => !carriedOut.has(n));
  const info = (name: string): OnnxValueInfo => {
    const v = g.inputs.find((i) => i.name === name) ?? g.outputs.find((o) => o.name === name);
    return { name, elemType: v?.elemType ?? DataType.FLOAT, shape: v?.shape ?? null };
  };

  // Inside the body, carried inputs and every output get names of their own (a subgraph must not
  // redefine a name of the graph around it); per-step inputs are this step's slice of `steps.<name>`.
  const map = new Map<string, string>();
  for (const n of carried) map.set(n, `body.${n}`);
  for (const o of g.outputs) map.set(o.name, `body.${o.name}`);
  const iter = 'body.iteration';
  const condIn = 'body.cond';
  const condOut = 'body.condOut';
  const slices: OnnxNode[] = perStep.map((p, k) => ({
    name: `body/slice_${k}`,
    opType: 'Gather',
    domain: '',
    inputs: [`${LOOP_PREFIX}${p}`, iter],
    outputs: [p],
    attributes: [{ name: 'axis', type: 'int', i: 0 }],
  }));
  const body: OnnxGraph = {
    name: 'fewshot-train-step-body',
    nodes: [
      {
        name: 'body/cond',
        opType: 'Identity',
        domain: '',
        inputs: [condIn],
        outputs: [condOut],
        attributes: [],
      },
      ...slices,
      ...rename(g.nodes, map),
    ],
    initializers: g.initializers,
    inputs: [
      { name: iter, elemType: DataType.INT64, shape: [] },
      { name: condIn, elemType: DataType.BOOL, shape: [] },
      ...carried.map((n) => ({ ...info(n), name: `body.${n}` })),
    ],
    outputs: [
      { name: condOut, elemType: DataType.BOOL, shape: [] },
      ...carried.map((n) => ({ ...info(`next.${n}`), name: `body.next.${n}` })),
      ...stacked.map((n) => ({ ...info(n), name: `body.${n}` })),
    ],
    valueInfo: [],
    unknown: [],
  };

  const first = `${LOOP_PREFIX}${perStep[0] as string}`;
  const count = 'loop.count';
  const outer: OnnxGraph = {
    name: 'fewshot-train-steps',
    nodes: [
      {
        name: 'loop/shape',
        opType: 'Shape',
        domain: '',
        inputs: [first],
        outputs: ['loop.shape'],
        attributes: [
          { name: 'start', type: 'int', i: 0 },
          { name: 'end', type: 'int', i: 1 },
        ],
      },
      {
        name: 'loop/count',
        opType: 'Squeeze',
        domain: '',
        inputs: ['loop.shape', 'loop.axis0'],
        outputs: [count],
        attributes: [],
      },
      {
        name: 'loop/steps',
        opType: 'Loop',
        domain: '',
        inputs: [count, '', ...carried],
        outputs: [...carried.map((n) => `next.${n}`), ...stacked],
        attributes: [{ name: 'body', type: 'graph', g: body }],
      },
    ],
    initializers: [
      { name: 'loop.axis0', dims: [1], dataType: DataType.INT64, raw: new Uint8Array(8), unknown: [] },
    ],
    inputs: [
      ...perStep.map((p) => {
        const v = info(p);
        return { ...v, name: `${LOOP_PREFIX}${p}`, shape: v.shape ? ['K', ...v.shape] : null };
      }),
      ...g.inputs.filter((i) => !perStep.includes(i.name)),
    ],
    outputs: [
      ...carried.map((n) => info(`next.${n}`)),
      ...stacked.map((n) => {
        const v = info(n);
        return { ...v, shape: v.shape ? ['K', ...v.shape] : null };
      }),
    ],
    valueInfo: [],
    unknown: [],
  };
  return { model: { ...step, graph: outer }, carried, perStep, stacked };
}

/** The step graph's inputs that change from step to step. */
export const PER_STEP = ['x', 'targets', 'sampleWeights', ...STEP_SCALARS];

/**
 * Steps per call: about 150 G multiply–accumulates (1–2 s here), so progress and Cancel stay prompt;
 * one for a step that is that large already (full ResNet18), at most 8.
 */
export function stepsPerCall(forwardMacsPerBatch: number): number {
  return Math.max(1, Math.min(8, Math.floor(150e9 / (3 * forwardMacsPerBatch))));
}

export interface StepInputs {
  x: CachedInput[];
  targets: Float32Array;
  sampleWeights: Float32Array;
  scalars: Record<(typeof STEP_SCALARS)[number], number>;
}

/** Runs batches of steps on a step session (`looped`: its model came from loopSteps). */
export class StepRunner {
  constructor(
    private readonly session: QueuedSession,
    private readonly looped: boolean,
  ) {}

  /**
   * Runs the steps in order from `carried` (weights, optimiser state, statistics, by input name); returns
   * the values after the last step as `next.<name>` and each step's loss. Batches in one call have one size.
   */
  async run(
    steps: StepInputs[],
    carried: Record<string, ort.Tensor>,
  ): Promise<{ next: Record<string, ort.Tensor>; losses: number[] }> {
    const first = steps[0];
    if (!first) return { next: {}, losses: [] };
    const n = first.x.length;
    const C = first.targets.length / n;
    const shape = (first.x[0] as CachedInput).shape;
    const per = shape.reduce((a, b) => a * b, 1);
    if (!this.looped) {
      const feeds = { ...carried };
      const next: Record<string, ort.Tensor> = {};
      const losses: number[] = [];
      for (const s of steps) {
        const res = await this.session.run({
          ...feeds,
          x: stackX([s], per, [s.x.length, ...shape]),
          targets: new ort.Tensor('float32', s.targets, [s.x.length, C]),
          sampleWeights: new ort.Tensor('float32', s.sampleWeights, [s.x.length]),
          ...Object.fromEntries(
            STEP_SCALARS.map((k) => [k, new ort.Tensor('float32', Float32Array.of(s.scalars[k]), [])]),
          ),
        });
        for (const [name, t] of Object.entries(res))
          if (name.startsWith('next.')) {
            next[name] = t;
            feeds[name.slice(5)] = t;
          }
        losses.push((res.loss as ort.Tensor).data[0] as number);
      }
      return { next, losses };
    }
    const K = steps.length;
    if (steps.some((s) => s.x.length !== n))
      throw new FewShotError('INVALID_INPUT', 'Steps in one call must have batches of one size.');
    const targets = new Float32Array(K * n * C);
    const sampleWeights = new Float32Array(K * n);
    steps.forEach((s, k) => {
      targets.set(s.targets, k * n * C);
      sampleWeights.set(s.sampleWeights, k * n);
    });
    const res = await this.session.run({
      ...carried,
      [`${LOOP_PREFIX}x`]: stackX(steps, per, [K, n, ...shape]),
      [`${LOOP_PREFIX}targets`]: new ort.Tensor('float32', targets, [K, n, C]),
      [`${LOOP_PREFIX}sampleWeights`]: new ort.Tensor('float32', sampleWeights, [K, n]),
      ...Object.fromEntries(
        STEP_SCALARS.map((k) => [
          `${LOOP_PREFIX}${k}`,
          new ort.Tensor(
            'float32',
            Float32Array.from(steps, (s) => s.scalars[k]),
            [K],
          ),
        ]),
      ),
    });
    const next: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(res)) if (name.startsWith('next.')) next[name] = t;
    return { next, losses: Array.from((res.loss as ort.Tensor).data as Float32Array) };
  }
}

function stackX(steps: StepInputs[], per: number, dims: number[]): ort.Tensor {
  const flat = new Float32Array(steps.reduce((a, s) => a + s.x.length, 0) * per);
  let o = 0;
  for (const s of steps)
    for (const it of s.x) {
      flat.set(it.data, o);
      o += per;
    }
  return new ort.Tensor('float32', flat, dims);
}
