// Fine-tuning on ONNX Runtime: the frozen prefix runs once per image and augmented view (cached), then the
// generated training graph (train-graph.ts) runs one optimisation step per batch on the same runtime that
// classifies, with weights and optimiser state kept as runtime tensors between steps. Linear probing first
// (the head starts as the linear head fitted on the pretrained features), class-balanced sampling, cosine
// decay, optional early stopping on a validation split; the trained values are written back into a copy
// of the ONNX graph, every other initializer byte-identical.

import crypto from 'node:crypto';
import type { AugmentSpec } from '../../../shared/augment.ts';
import { FewShotError } from '../../../shared/errors.ts';
import type { FinetuneStrategy } from '../../../shared/strategies.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { fitTemperature } from '../classify/calibration.ts';
import { classifierGraph } from '../classify/classifier-graph.ts';
import { fitLinear, type LinearHead } from '../classify/heads.ts';
import { cutAt, withInitializers } from '../onnx/graph.ts';
import { encodeModel, type OnnxModel } from '../onnx/model.ts';
import { nchwcBlockSize } from '../onnx/nchwc.ts';
import { resolveDevice } from '../onnx/providers.ts';
import { defaultThreads, deviceLabel, QueuedSession, ort, type Placement } from '../onnx/session.ts';
import { Rng } from '../random.ts';
import { balancedOrder, cacheFrozenPrefix, type CachedInput, type TrainingImage } from './prefix.ts';
import { buildTrainGraphs, HEAD_BIAS, HEAD_WEIGHT } from './train-graph.ts';
import { loopSteps, PER_STEP, StepRunner, stepsPerCall, type StepInputs } from './step-loop.ts';

export type { FinetuneStrategy, TrainingImage };
export { balancedOrder };

export interface FinetuneOptions {
  strategy: FinetuneStrategy;
  epochs?: number;
  batchSize?: number;
  lrHead?: number;
  lrBackbone?: number;
  optimizer?: 'adam' | 'sgd';
  momentum?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  /** Largest global gradient norm; larger gradients are scaled down (default: no clipping). */
  gradientClip?: number;
  /** Loss weight per class (default: equal; sampling is class-balanced already). */
  classWeights?: number[];
  augment: AugmentSpec;
  /** Augmented views per image, cycled over the epochs (view 0 is the evaluation crop). */
  views?: number;
  seed?: number;
  device?: 'cpu' | 'gpu' | 'auto';
  threads?: number;
  signal?: AbortSignal;
  /** Let BatchNorm use batch statistics while training and update its running ones (default: frozen). */
  adaptBatchNorm?: boolean;
  /**
   * Training steps per runtime call on the CPU (default: about 1–2 s of work per call); 1 runs the plain
   * step graph once per step. The weights come out the same either way.
   */
  stepsPerCall?: number;
  /** Images × views through the frozen layers so far, of the total. */
  onPrefixProgress?: (done: number, total: number) => void;
  /** Where the state after each epoch is kept, so a killed run resumes where it stopped. */
  checkpoint?: CheckpointStore;
  onProgress?: (p: {
    epoch: number;
    epochs: number;
    step: number;
    steps: number;
    loss: number;
    validationAccuracy?: number;
    /** The report at an epoch's end: `loss` is then the epoch's mean training loss. */
    epochEnd?: true;
  }) => void;
}

export interface CheckpointStore {
  load(): Buffer | null;
  save(epoch: number, state: Buffer): void;
}

export interface FinetuneResult {
  onnx: Uint8Array;
  classes: string[];
  /** What ran the training steps, e.g. "onnxruntime-node 1.30.0, cpu, 2 threads". */
  runtime: string;
  providers: string[];
  /** The device in words ("CPU", "WebGPU", "CPU (GPU asked for: …)") and where the step graph's nodes ran. */
  device: string;
  deviceNote: string | null;
  placement: Placement | null;
  history: { epoch: number; loss: number; validationAccuracy?: number }[];
  bestEpoch: number;
  temperature: number;
  /** The validation split's logits under the chosen weights (what the temperature was fitted on). */
  validationLogits: number[][];
  trainable: string[];
  seconds: { prefix: number; tail: number; total: number };
  steps: number;
  /** Multiply–accumulates of one training image through the tail: forward, and forward + backward. */
  macs: { forward: number; step: number };
  weightsSha256: string;
  settings: Record<string, unknown>;
}

type Tensors = Map<string, ort.Tensor>;

function f32(t: ort.Tensor): Float32Array {
  return t.data as Float32Array;
}

function batchTensor(items: CachedInput[]): ort.Tensor {
  const shape = items[0]?.shape as number[];
  const per = shape.reduce((a, b) => a * b, 1);
  const flat = new Float32Array(items.length * per);
  items.forEach((it, i) => flat.set(it.data, i * per));
  return new ort.Tensor('float32', flat, [items.length, ...shape]);
}

const toB64 = (a: Float32Array): string =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const fromB64 = (b: string): Float32Array => {
  const raw = Buffer.from(b, 'base64');
  const out = new Float32Array(raw.length / 4);
  new Uint8Array(out.buffer).set(raw);
  return out;
};

interface Checkpoint {
  epoch: number;
  step: number;
  params: string[];
  m: string[];
  v: string[];
  stats: string[];
  history: FinetuneResult['history'];
  best: { epoch: number; accuracy: number; params: string[]; stats: string[] } | null;
}

/**
 * Images per inference call of the probe and evaluation graphs. Small batches run as fast per image as
 * large ones on the CPU and need less memory: all of a session's memory is new to the process, and
 * faulting it in costs up to ~3 s a GiB on some machines (a full ResNet18's probe: 1.6 s at 32, 1.2 s at 8).
 */
const INFERENCE_BATCH = 8;

/** Runs the evaluation graph over cached inputs in batches: features and logits per item. */
async function evaluateCached(
  session: QueuedSession,
  items: CachedInput[],
  weights: Tensors,
): Promise<{ features: Float32Array[]; logits: number[][] }> {
  const features: Float32Array[] = [];
  const logits: number[][] = [];
  for (let s = 0; s < items.length; s += INFERENCE_BATCH) {
    const part = items.slice(s, s + INFERENCE_BATCH);
    const res = await session.run({ x: batchTensor(part), ...Object.fromEntries(weights) });
    const f = f32(res.features as ort.Tensor);
    const z = f32(res.logits as ort.Tensor);
    const D = f.length / part.length;
    const K = z.length / part.length;
    for (let i = 0; i < part.length; i++) {
      features.push(f.slice(i * D, (i + 1) * D));
      logits.push(Array.from(z.subarray(i * K, (i + 1) * K)));
    }
  }
  return { features, logits };
}

export async function finetune(
  entry: ResolvedBackbone,
  classes: string[],
  train: TrainingImage[],
  options: FinetuneOptions,
  validation: TrainingImage[] = [],
): Promise<FinetuneResult> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const epochs = options.epochs ?? 10;
  const batchSize = options.batchSize ?? 16;
  const views = options.views ?? 4;
  const lrHead = options.lrHead ?? 1e-3;
  const lrBackbone = options.lrBackbone ?? 1e-4;
  const optimizer = options.optimizer ?? 'adam';
  const momentum = options.momentum ?? 0.9;
  const weightDecay = options.weightDecay ?? 1e-4;
  const smoothing = options.labelSmoothing ?? 0.1;
  const threads = options.threads ?? defaultThreads();
  const session = { threads, device: options.device ?? 'auto' } as const;
  const C = classes.length;
  if (C < 2) throw new FewShotError('INVALID_INPUT', 'At least two classes are needed.');
  if (!train.length) throw new FewShotError('INVALID_INPUT', 'No training images.');

  const { model, features, cut, cached, valCached } = await cacheFrozenPrefix(
    entry,
    options.strategy,
    train,
    validation,
    {
      views,
      augment: options.augment,
      seed,
      signal: options.signal,
      onPrefixProgress: options.onPrefixProgress,
    },
    session,
  );
  const prefixSeconds = (performance.now() - started) / 1000;
  const tailStart = performance.now();
  const inputShape = (cached[0]?.[0] as CachedInput).shape;
  const labels = train.map((t) => t.label);

  // Linear probing first (LP-FT): the pretrained tail's features of the evaluation crops fit the linear
  // head (SimpleShot CL2N, weight decay by inner cross-validation) that fine-tuning starts from.
  const spec = {
    model,
    cut,
    features,
    inputShape,
    classes: C,
    optimizer,
    momentum,
    adaptBatchNorm: options.adaptBatchNorm ?? false,
  };
  // The pretrained tail as it ships, its weights constants, so the runtime's fastest kernels run it.
  const probeSession = await QueuedSession.create(encodeModel(cutAt(model, features, null, cut)), session);
  const initial: Float32Array[] = [];
  try {
    const views0 = cached.map((c) => c[0] as CachedInput);
    for (let s = 0; s < views0.length; s += INFERENCE_BATCH) {
      const part = views0.slice(s, s + INFERENCE_BATCH);
      const f = f32((await probeSession.run({ [cut]: batchTensor(part) }))[features] as ort.Tensor);
      const D = f.length / part.length;
      for (let i = 0; i < part.length; i++) initial.push(f.slice(i * D, (i + 1) * D));
    }
  } finally {
    await probeSession.release();
  }
  const probe = fitLinear({ x: initial, y: labels, classes }, { seed });
  // On the CPU, convolutions run on the runtime's blocked-layout kernels (onnx/nchwc.ts), and several steps
  // run in one call (step-loop.ts): the weights and optimiser state stay in the runtime between them
  // instead of being copied out and back every step.
  const onCpu = (await resolveDevice(session.device)).provider === 'cpu';
  const graphs = buildTrainGraphs({
    ...spec,
    centre: Float32Array.from(probe.centre),
    nchwcBlock: onCpu ? await nchwcBlockSize() : 0,
  });
  const chunk = onCpu ? (options.stepsPerCall ?? stepsPerCall(graphs.forwardMacs * batchSize)) : 1;
  const loop = chunk > 1 ? loopSteps(graphs.step, PER_STEP) : null;
  const stepSession = await QueuedSession.create(encodeModel(loop?.model ?? graphs.step), {
    ...session,
    recordPlacement: true,
    memoryPattern: false,
  });
  const runner = new StepRunner(stepSession, loop !== null);
  const evalSession = await QueuedSession.create(encodeModel(graphs.evaluate), session);

  let weights: Tensors = new Map();
  let state: Tensors = new Map();
  for (const p of graphs.params) {
    const init =
      p.name === HEAD_WEIGHT
        ? Float32Array.from(probe.weights)
        : p.name === HEAD_BIAS
          ? Float32Array.from(probe.bias)
          : p.init;
    weights.set(p.name, new ort.Tensor('float32', init, p.dims));
    state.set(`m.${p.name}`, new ort.Tensor('float32', new Float32Array(init.length), p.dims));
    if (optimizer === 'adam')
      state.set(`v.${p.name}`, new ort.Tensor('float32', new Float32Array(init.length), p.dims));
  }
  for (const s of graphs.statistics) weights.set(s.name, new ort.Tensor('float32', s.init, s.dims));
  const statNames = graphs.statistics.map((s) => s.name);

  const rng = new Rng(seed);
  const stepsPerEpoch = Math.ceil(balancedOrder(labels, new Rng(seed)).length / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const classWeight = options.classWeights ?? new Array<number>(C).fill(1);
  const history: FinetuneResult['history'] = [];
  let best: { epoch: number; accuracy: number; weights: Tensors } | null = null;
  let step = 0;
  let startEpoch = 0;
  const saved = options.checkpoint?.load();
  if (saved) {
    // Resume: weights, optimiser moments, step, history and best epoch as they were after the last
    // completed epoch; the sampling RNG is replayed through those epochs, so the run continues exactly.
    const st = JSON.parse(saved.toString('utf8')) as Checkpoint;
    const restore = (names: string[], values: string[], into: Tensors): Tensors => {
      const out = new Map(into);
      names.forEach((n, i) =>
        out.set(n, new ort.Tensor('float32', fromB64(values[i] as string), (into.get(n) as ort.Tensor).dims)),
      );
      return out;
    };
    const paramNames = graphs.params.map((p) => p.name);
    weights = restore(statNames, st.stats, restore(paramNames, st.params, weights));
    state = restore(
      paramNames.map((n) => `m.${n}`),
      st.m,
      state,
    );
    if (optimizer === 'adam')
      state = restore(
        paramNames.map((n) => `v.${n}`),
        st.v,
        state,
      );
    step = st.step;
    startEpoch = st.epoch;
    history.push(...st.history);
    if (st.best)
      best = {
        epoch: st.best.epoch,
        accuracy: st.best.accuracy,
        weights: restore(statNames, st.best.stats, restore(paramNames, st.best.params, weights)),
      };
    for (let e = 0; e < startEpoch; e++) balancedOrder(labels, rng);
  }

  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const order = balancedOrder(labels, rng);
      let lossSum = 0;
      const batches: number[][] = [];
      for (let s = 0; s < order.length; s += batchSize) batches.push(order.slice(s, s + batchSize));
      for (let b = 0; b < batches.length;) {
        if (options.signal?.aborted)
          throw new FewShotError('CANCELLED', 'Training cancelled; earlier models are untouched.');
        // Up to `chunk` batches of one size in one call (a Loop on the CPU); the last, smaller batch alone.
        const size = (batches[b] as number[]).length;
        let k = 1;
        while (k < chunk && b + k < batches.length && (batches[b + k] as number[]).length === size) k++;
        const inputs: StepInputs[] = batches.slice(b, b + k).map((idx, j) => {
          const n = idx.length;
          const targets = new Float32Array(n * C).fill(smoothing / C);
          const sampleWeights = new Float32Array(n);
          idx.forEach((i, q) => {
            const y = labels[i] as number;
            targets[q * C + y] = 1 - smoothing + smoothing / C;
            sampleWeights[q] = classWeight[y] ?? 1;
          });
          const wsum = sampleWeights.reduce((a, c) => a + c, 0);
          for (let q = 0; q < n; q++) sampleWeights[q] = (sampleWeights[q] as number) / wsum;
          const t = step + j;
          const cosine = 0.5 * (1 + Math.cos((Math.PI * t) / totalSteps));
          return {
            x: idx.map((i) => (cached[i] as CachedInput[])[(epoch + i) % views] as CachedInput),
            targets,
            sampleWeights,
            scalars: {
              lrHead: lrHead * cosine,
              lrBackbone: lrBackbone * cosine,
              weightDecay,
              clipNorm: options.gradientClip ?? 3.4e38,
              bc1: 1 / (1 - 0.9 ** (t + 1)),
              bc2: 1 / (1 - 0.999 ** (t + 1)),
            },
          };
        });
        const res = await runner.run(inputs, {
          ...Object.fromEntries(weights),
          ...Object.fromEntries(state),
        });
        const next: Tensors = new Map();
        for (const name of weights.keys())
          next.set(name, (res.next[`next.${name}`] ?? weights.get(name)) as ort.Tensor);
        weights = next;
        for (const name of state.keys()) state.set(name, res.next[`next.${name}`] as ort.Tensor);
        res.losses.forEach((loss, j) => {
          if (!Number.isFinite(loss))
            throw new FewShotError(
              'INVALID_INPUT',
              `Training diverged at step ${step + 1} (loss ${loss}); try a lower learning rate.`,
            );
          lossSum += loss * (batches[b + j] as number[]).length;
          step++;
          options.onProgress?.({ epoch: epoch + 1, epochs, step, steps: totalSteps, loss });
        });
        b += k;
      }
      const entryH: FinetuneResult['history'][number] = { epoch: epoch + 1, loss: lossSum / order.length };
      if (valCached.length) {
        const { logits } = await evaluateCached(
          evalSession,
          valCached.map((v) => v[0] as CachedInput),
          weights,
        );
        const correct = logits.filter((z, i) => z.indexOf(Math.max(...z)) === validation[i]?.label).length;
        const accuracy = correct / validation.length;
        entryH.validationAccuracy = accuracy;
        // Tensors are never written in place, so keeping the references keeps this epoch's weights.
        if (!best || accuracy > best.accuracy)
          best = { epoch: epoch + 1, accuracy, weights: new Map(weights) };
      }
      history.push(entryH);
      if (options.checkpoint) {
        const names = graphs.params.map((p) => p.name);
        const cp: Checkpoint = {
          epoch: epoch + 1,
          step,
          params: names.map((nm) => toB64(f32(weights.get(nm) as ort.Tensor))),
          m: names.map((nm) => toB64(f32(state.get(`m.${nm}`) as ort.Tensor))),
          v: optimizer === 'adam' ? names.map((nm) => toB64(f32(state.get(`v.${nm}`) as ort.Tensor))) : [],
          stats: statNames.map((nm) => toB64(f32(weights.get(nm) as ort.Tensor))),
          history,
          best: best
            ? {
                epoch: best.epoch,
                accuracy: best.accuracy,
                params: names.map((nm) => toB64(f32(best?.weights.get(nm) as ort.Tensor))),
                stats: statNames.map((nm) => toB64(f32(best?.weights.get(nm) as ort.Tensor))),
              }
            : null,
        };
        options.checkpoint.save(epoch + 1, Buffer.from(JSON.stringify(cp)));
      }
      options.onProgress?.({
        epoch: epoch + 1,
        epochs,
        step,
        steps: totalSteps,
        loss: entryH.loss,
        ...(entryH.validationAccuracy !== undefined ? { validationAccuracy: entryH.validationAccuracy } : {}),
        epochEnd: true,
      });
    }
    // Early stopping: keep the epoch that did best on the validation split.
    if (best) weights = best.weights;
    let temperature = probe.temperature;
    let validationLogits: number[][] = [];
    if (valCached.length) {
      validationLogits = (
        await evaluateCached(
          evalSession,
          valCached.map((v) => v[0] as CachedInput),
          weights,
        )
      ).logits;
      if (validationLogits.length >= 2)
        temperature = fitTemperature(
          validationLogits,
          validation.map((v) => v.label),
        );
    }
    const trained = writeBack(model, weights);
    const head: LinearHead = {
      ...probe,
      weights: Float64Array.from(f32(weights.get(HEAD_WEIGHT) as ort.Tensor)),
      bias: Float64Array.from(f32(weights.get(HEAD_BIAS) as ort.Tensor)),
      temperature,
    };
    const onnx = encodeModel(
      classifierGraph(cutAt(trained, features), head, {
        'fewshot.strategy': options.strategy,
        'fewshot.labels': JSON.stringify(classes),
      }),
    );
    const hash = crypto.createHash('sha256');
    for (const name of [...graphs.params.map((p) => p.name), ...statNames]) {
      const d = f32(weights.get(name) as ort.Tensor);
      hash.update(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    }
    const tailSeconds = (performance.now() - tailStart) / 1000;
    const placed = step > startEpoch * stepsPerEpoch ? await stepSession.placement().catch(() => null) : null;
    return {
      onnx,
      classes,
      runtime: `onnxruntime-node ${ort.env.versions.common}, ${stepSession.providers[0]}, ${threads} threads`,
      providers: [...stepSession.providers],
      device: deviceLabel(stepSession.device),
      deviceNote: stepSession.device.note,
      placement: placed,
      history,
      bestEpoch: best?.epoch ?? epochs,
      temperature,
      validationLogits,
      trainable: graphs.params.filter((p) => p.role === 'backbone').map((p) => p.name),
      seconds: { prefix: prefixSeconds, tail: tailSeconds, total: (performance.now() - started) / 1000 },
      steps: step,
      macs: { forward: graphs.forwardMacs, step: 3 * graphs.forwardMacs },
      weightsSha256: hash.digest('hex'),
      settings: {
        strategy: options.strategy,
        epochs,
        batchSize,
        views,
        lrHead,
        lrBackbone,
        optimizer,
        momentum,
        weightDecay,
        labelSmoothing: smoothing,
        gradientClip: options.gradientClip ?? null,
        classWeights: options.classWeights ?? null,
        schedule: 'cosine',
        sampling: 'class-balanced',
        batchNorm: options.adaptBatchNorm
          ? 'statistics adapted (batch statistics in training)'
          : 'statistics frozen',
        augment: options.augment,
        cut,
        seed,
        threads,
      },
    };
  } finally {
    await stepSession.release();
    await evalSession.release();
  }
}

/** A copy of the model with trained values in place of its initializers; nothing else changes. */
export function writeBack(model: OnnxModel, values: Map<string, ort.Tensor>): OnnxModel {
  return withInitializers(model, new Map([...values].map(([name, t]) => [name, Float32Array.from(f32(t))])));
}
