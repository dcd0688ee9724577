// The TensorFlow.js fine-tuning engine, kept as a test oracle for the ONNX Runtime one (finetune.ts): the
// frozen prefix runs once per image and augmented view through ONNX Runtime (cached), only the tail trains
// in TensorFlow.js (Adam or SGD with momentum, separate learning rates for head and
// backbone, cosine decay, label smoothing, class-balanced sampling, optional early stopping on a
// validation split), and the result is written back into a copy of the ONNX graph with its new head.

import crypto from 'node:crypto';
import { FewShotError } from '../../../shared/errors.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { fitTemperature } from '../classify/calibration.ts';
import { classifierGraph } from '../classify/classifier-graph.ts';
import { fitLinear, type LinearHead } from '../classify/heads.ts';
import { cutAt } from '../onnx/graph.ts';
import { encodeModel } from '../onnx/model.ts';
import { Rng } from '../random.ts';
import type { FinetuneOptions } from './finetune.ts';
import { balancedOrder, cacheFrozenPrefix, type CachedInput, type TrainingImage } from './prefix.ts';
import { buildTail, writeBack, type TailGraph } from './tail-graph.ts';
import { initTf, tf, type TfBackendName } from './tf-backend.ts';

export interface TfjsFinetuneResult {
  onnx: Uint8Array;
  classes: string[];
  backend: TfBackendName;
  history: { epoch: number; loss: number; validationAccuracy?: number }[];
  bestEpoch: number;
  temperature: number;
  trainable: string[];
  seconds: { prefix: number; tail: number; total: number };
  weightsSha256: string;
}

function toNhwc(items: CachedInput[]): tf.Tensor4D {
  const [c, h, w] = items[0]?.shape as [number, number, number];
  const flat = new Float32Array(items.length * c * h * w);
  items.forEach((it, i) => flat.set(it.data, i * c * h * w));
  return tf.tidy(() => tf.transpose<tf.Tensor4D>(tf.tensor4d(flat, [items.length, c, h, w]), [0, 2, 3, 1]));
}

export async function finetuneTfjs(
  entry: ResolvedBackbone,
  classes: string[],
  train: TrainingImage[],
  options: FinetuneOptions,
  validation: TrainingImage[] = [],
): Promise<TfjsFinetuneResult> {
  const started = performance.now();
  const backend = await initTf(options.device === 'gpu' ? 'gpu' : options.device === 'cpu' ? 'wasm' : 'auto');
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
  const C = classes.length;
  if (C < 2) throw new FewShotError('INVALID_INPUT', 'At least two classes are needed.');

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
  );
  const prefixSeconds = (performance.now() - started) / 1000;

  const tailStart = performance.now();
  const tail: TailGraph = buildTail(model, cut, features, {
    adaptBatchNorm: options.adaptBatchNorm ?? false,
  });
  const labels = train.map((t) => t.label);
  // Linear probing first (LP-FT): the head starts as the linear head fitted on the pretrained features
  // of the evaluation crops (SimpleShot CL2N, weight decay by inner cross-validation), so fine-tuning
  // starts from the linear solution instead of tearing the features up to fit a random head.
  const initial: Float32Array[] = [];
  for (let s = 0; s < cached.length; s += 32) {
    const f = tf.tidy(() =>
      tail.forward(toNhwc(cached.slice(s, s + 32).map((c) => c[0] as CachedInput))).arraySync(),
    );
    for (const row of f) initial.push(Float32Array.from(row));
  }
  const probe = fitLinear({ x: initial, y: labels, classes }, { seed });
  const featureDim = probe.centre.length;
  const centre = tf.tensor1d(Float32Array.from(probe.centre));
  const headW = tf.variable(
    tf.transpose(tf.tensor2d(Float32Array.from(probe.weights), [C, featureDim])),
    true,
    'head.w',
  );
  const headB = tf.variable(tf.tensor1d(Float32Array.from(probe.bias)), true, 'head.b');
  const backboneVars = [...tail.variables.values()];
  const all = [headW, headB, ...backboneVars];
  const state = new Map<tf.Variable, { m: tf.Tensor; v: tf.Tensor }>(
    all.map((v) => [v, { m: tf.zerosLike(v), v: tf.zerosLike(v) }]),
  );
  const rng = new Rng(seed);
  const stepsPerEpoch = Math.ceil(balancedOrder(labels, new Rng(seed)).length / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const logitsOf = (x: tf.Tensor4D, training = false): tf.Tensor2D => {
    const c = tf.sub(tail.forward(x, training), centre);
    const q = tf.div(c, tf.maximum(tf.norm(c, 'euclidean', 1, true), 1e-12));
    return tf.add(tf.matMul(q, headW), headB);
  };
  const history: TfjsFinetuneResult['history'] = [];
  let best: { epoch: number; accuracy: number; values: Map<tf.Variable, Float32Array> } | null = null;
  let step = 0;
  let startEpoch = 0;
  const toB64 = (a: Float32Array): string =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  const fromB64 = (b: string): Float32Array => {
    const raw = Buffer.from(b, 'base64');
    const out = new Float32Array(raw.length / 4);
    new Uint8Array(out.buffer).set(raw);
    return out;
  };
  const saved = options.checkpoint?.load();
  if (saved) {
    // Resume: weights, optimiser moments, step, history and best epoch as they were after the last
    // completed epoch; the sampling RNG is replayed through those epochs, so the run continues exactly.
    const st = JSON.parse(saved.toString('utf8')) as {
      stats?: string[];
      epoch: number;
      step: number;
      vars: string[];
      m: string[];
      v: string[];
      history: TfjsFinetuneResult['history'];
      best: { epoch: number; accuracy: number; values: string[] } | null;
    };
    all.forEach((v, i) => {
      v.assign(tf.tensor(fromB64(st.vars[i] as string), v.shape));
      const s2 = state.get(v) as { m: tf.Tensor; v: tf.Tensor };
      s2.m.dispose();
      s2.v.dispose();
      s2.m = tf.keep(tf.tensor(fromB64(st.m[i] as string), v.shape));
      s2.v = tf.keep(tf.tensor(fromB64(st.v[i] as string), v.shape));
    });
    [...tail.statistics.values()].forEach((v, i) =>
      v.assign(tf.tensor(fromB64(st.stats?.[i] as string), v.shape)),
    );
    step = st.step;
    startEpoch = st.epoch;
    history.push(...st.history);
    if (st.best)
      best = {
        epoch: st.best.epoch,
        accuracy: st.best.accuracy,
        values: new Map(all.map((v, i) => [v, fromB64(st.best?.values[i] as string)])),
      };
    for (let e = 0; e < startEpoch; e++) balancedOrder(labels, rng);
  }

  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const order = balancedOrder(labels, rng);
      let lossSum = 0;
      for (let s = 0; s < order.length; s += batchSize) {
        if (options.signal?.aborted)
          throw new FewShotError('CANCELLED', 'Training cancelled; earlier models are untouched.');
        const idx = order.slice(s, s + batchSize);
        const cosine = 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps));
        const loss = tf.tidy(() => {
          const x = toNhwc(idx.map((i) => (cached[i] as CachedInput[])[(epoch + i) % views] as CachedInput));
          const y = tf.add(
            tf.mul(
              tf.oneHot(
                tf.tensor1d(
                  idx.map((i) => labels[i] as number),
                  'int32',
                ),
                C,
              ),
              1 - smoothing,
            ),
            smoothing / C,
          );
          const { value, grads } = tf.variableGrads(
            (): tf.Scalar => tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(y, logitsOf(x, true)),
            all,
          );
          for (const v of all) {
            const g = grads[v.name];
            if (!g) continue;
            const lr = (v === headW || v === headB ? lrHead : lrBackbone) * cosine;
            const st = state.get(v) as { m: tf.Tensor; v: tf.Tensor };
            let update: tf.Tensor;
            if (optimizer === 'adam') {
              const m = tf.add(tf.mul(st.m, 0.9), tf.mul(g, 0.1));
              const vv = tf.add(tf.mul(st.v, 0.999), tf.mul(tf.square(g), 0.001));
              const mh = tf.div(m, 1 - 0.9 ** (step + 1));
              const vh = tf.div(vv, 1 - 0.999 ** (step + 1));
              update = tf.mul(tf.div(mh, tf.add(tf.sqrt(vh), 1e-8)), lr);
              st.m.dispose();
              st.v.dispose();
              st.m = tf.keep(m);
              st.v = tf.keep(vv);
            } else {
              const m = tf.add(tf.mul(st.m, momentum), g);
              update = tf.mul(m, lr);
              st.m.dispose();
              st.m = tf.keep(m);
            }
            // Decoupled weight decay on weights, not on biases or BatchNorm shifts.
            const decayed = v.rank > 1 ? tf.mul(v, 1 - lr * weightDecay) : v;
            v.assign(tf.sub(decayed, update));
          }
          return value.dataSync()[0] as number;
        });
        lossSum += loss * idx.length;
        step++;
        options.onProgress?.({ epoch: epoch + 1, epochs, step, steps: totalSteps, loss });
      }
      const entryH: TfjsFinetuneResult['history'][number] = {
        epoch: epoch + 1,
        loss: lossSum / order.length,
      };
      if (valCached.length) {
        const pred = tf.tidy(() =>
          Array.from(tf.argMax(logitsOf(toNhwc(valCached.map((v) => v[0] as CachedInput))), 1).dataSync()),
        );
        const accuracy = pred.filter((p, i) => p === validation[i]?.label).length / validation.length;
        entryH.validationAccuracy = accuracy;
        if (!best || accuracy > best.accuracy) {
          const values = new Map<tf.Variable, Float32Array>();
          for (const v of all) values.set(v, Float32Array.from(v.dataSync()));
          best = { epoch: epoch + 1, accuracy, values };
        }
      }
      history.push(entryH);
      if (options.checkpoint) {
        const state2 = {
          epoch: epoch + 1,
          step,
          vars: all.map((v) => toB64(v.dataSync() as Float32Array)),
          m: all.map((v) => toB64((state.get(v) as { m: tf.Tensor }).m.dataSync() as Float32Array)),
          v: all.map((v) => toB64((state.get(v) as { v: tf.Tensor }).v.dataSync() as Float32Array)),
          history,
          stats: [...tail.statistics.values()].map((v) => toB64(v.dataSync() as Float32Array)),
          best: best
            ? {
                epoch: best.epoch,
                accuracy: best.accuracy,
                values: all.map((v) => toB64(best?.values.get(v) as Float32Array)),
              }
            : null,
        };
        options.checkpoint.save(epoch + 1, Buffer.from(JSON.stringify(state2)));
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
    if (best) for (const [v, values] of best.values) v.assign(tf.tensor(values, v.shape));
    let temperature = probe.temperature;
    if (valCached.length >= 2) {
      const logits = tf.tidy(() => logitsOf(toNhwc(valCached.map((v) => v[0] as CachedInput))).arraySync());
      temperature = fitTemperature(
        logits,
        validation.map((v) => v.label),
      );
    }
    const trained = await writeBack(model, tail);
    const featureGraph = cutAt(trained, features);
    const head: LinearHead = {
      ...probe,
      weights: Float64Array.from(tf.tidy(() => tf.transpose(headW)).dataSync()), // [C, D]
      bias: Float64Array.from(headB.dataSync()),
      temperature,
    };
    const onnx = encodeModel(
      classifierGraph(featureGraph, head, {
        'fewshot.strategy': options.strategy,
        'fewshot.labels': JSON.stringify(classes),
      }),
    );
    const hash = crypto.createHash('sha256');
    for (const v of [...all, ...tail.statistics.values()]) hash.update(Buffer.from(v.dataSync().buffer));
    const tailSeconds = (performance.now() - tailStart) / 1000;
    return {
      onnx,
      classes,
      backend,
      history,
      bestEpoch: best?.epoch ?? epochs,
      temperature,
      trainable: [...tail.variables.keys()],
      seconds: { prefix: prefixSeconds, tail: tailSeconds, total: (performance.now() - started) / 1000 },
      weightsSha256: hash.digest('hex'),
    };
  } finally {
    tail.dispose();
    centre.dispose();
    for (const st of state.values()) {
      st.m.dispose();
      st.v.dispose();
    }
    headW.dispose();
    headB.dispose();
  }
}
