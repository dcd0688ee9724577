// The ONNX Runtime training graph's gradients against the TensorFlow.js engine's (the previous engine, kept
// as the oracle) on real backbones' trained parts: same cut-tensor input, same head, same targets.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { backboneGraph } from '../../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { stageCut } from '../../src/main/engine/finetune/stages.ts';
import { buildTail } from '../../src/main/engine/finetune/tail-graph.ts';
import { initTf, tf } from '../../src/main/engine/finetune/tf-backend.ts';
import {
  buildTrainGraphs,
  HEAD_BIAS,
  HEAD_WEIGHT,
  STEP_SCALARS,
} from '../../src/main/engine/finetune/train-graph.ts';
import { cutAt, findFeatureTensor } from '../../src/main/engine/onnx/graph.ts';
import { encodeModel } from '../../src/main/engine/onnx/model.ts';
import { Rng } from '../../src/main/engine/random.ts';
import type { FinetuneStrategy } from '../../src/shared/strategies.ts';
import { GENERATED_MODELS, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

before(async () => {
  useModelDirs(tmpDir('fsl-user-models-'));
  ensureRandomResNet18(GENERATED_MODELS);
  await initTf('wasm');
});

async function compare(
  id: string,
  strategy: FinetuneStrategy,
  size: number,
  adaptBatchNorm = false,
): Promise<void> {
  const entry = resolveBackbone(id);
  const model = backboneGraph(entry);
  const features = entry.output.name ?? findFeatureTensor(model);
  const cut = stageCut(model, entry.architecture, strategy);
  const rng = new Rng(7);
  const N = 2;
  const K = 4;
  // The cut tensor of N real-shaped inputs: the prefix run on noise at a reduced image size.
  const image = new Float32Array(N * 3 * size * size).map(() => rng.next() * 2 - 1);
  let x: ort.Tensor = new ort.Tensor('float32', image, [N, 3, size, size]);
  if (cut !== model.graph.inputs[0]?.name) {
    const s = await ort.InferenceSession.create(encodeModel(cutAt(model, cut)));
    x = (await s.run({ [entry.input.name]: x }))[cut] as ort.Tensor;
    await s.release();
  }
  const spec = {
    model,
    cut,
    features,
    inputShape: x.dims.slice(1),
    classes: K,
    optimizer: 'adam' as const,
    adaptBatchNorm,
    outputGradients: true,
  };
  const D = buildTrainGraphs(spec).params.find((p) => p.name === HEAD_WEIGHT)?.dims[1] as number;
  const centre = new Float32Array(D).map(() => rng.next() * 0.1);
  const withCentre = buildTrainGraphs({ ...spec, centre });
  const headW = new Float32Array(K * D).map(() => (rng.next() - 0.5) * 2);
  const headB = new Float32Array(K).map(() => rng.next() - 0.5);
  const targets = new Float32Array(N * K).fill(0.025);
  for (let i = 0; i < N; i++) targets[i * K + (i % K)] = 0.925;
  const feeds: Record<string, ort.Tensor> = {
    x,
    targets: new ort.Tensor('float32', targets, [N, K]),
    sampleWeights: new ort.Tensor('float32', new Float32Array(N).fill(1 / N), [N]),
  };
  for (const s of STEP_SCALARS) feeds[s] = new ort.Tensor('float32', Float32Array.of(1), []);
  for (const p of withCentre.params) {
    const init = p.name === HEAD_WEIGHT ? headW : p.name === HEAD_BIAS ? headB : p.init;
    feeds[p.name] = new ort.Tensor('float32', init, p.dims);
    feeds[`m.${p.name}`] = new ort.Tensor('float32', new Float32Array(init.length), p.dims);
    feeds[`v.${p.name}`] = new ort.Tensor('float32', new Float32Array(init.length), p.dims);
  }
  for (const s of withCentre.statistics) feeds[s.name] = new ort.Tensor('float32', s.init, s.dims);
  const session = await ort.InferenceSession.create(encodeModel(withCentre.step), { intraOpNumThreads: 2 });
  const out = await session.run(feeds);
  await session.release();

  // TF.js (NHWC) on the same input.
  const tail = buildTail(model, cut, features, { adaptBatchNorm });
  const w = tf.variable(tf.transpose(tf.tensor2d(headW, [K, D])), true, 'head.w');
  const b = tf.variable(tf.tensor1d(headB), true, 'head.b');
  const vars = [w, b, ...tail.variables.values()];
  const { value, grads } = tf.variableGrads(() => {
    const nhwc = tf.transpose(
      tf.tensor4d(x.data as Float32Array, x.dims as [number, number, number, number]),
      [0, 2, 3, 1],
    );
    const c = tf.sub(tail.forward(nhwc, adaptBatchNorm), tf.tensor1d(centre));
    const q = tf.div(c, tf.maximum(tf.norm(c, 'euclidean', 1, true), 1e-12));
    const logits = tf.add(tf.matMul(q, w), b);
    return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(tf.tensor2d(targets, [N, K]), logits);
  }, vars);
  const lossTf = value.dataSync()[0] as number;
  const lossOrt = (out.loss as ort.Tensor).data[0] as number;
  assert.ok(
    Math.abs(lossTf - lossOrt) < 1e-4 * Math.max(1, Math.abs(lossTf)),
    `${id} ${strategy}: loss ${lossOrt} vs ${lossTf}`,
  );
  const compareOne = (name: string, tfGrad: tf.Tensor): void => {
    const ortGrad = (out[`grad.${name}`] as ort.Tensor).data as Float32Array;
    const rank = tfGrad.rank;
    const oihw =
      rank === 4
        ? tf.transpose(tfGrad, tail.depthwise.has(name) ? [2, 3, 0, 1] : [3, 2, 0, 1])
        : name === HEAD_WEIGHT
          ? tf.transpose(tfGrad)
          : tfGrad;
    const ref = oihw.dataSync() as Float32Array;
    assert.equal(ref.length, ortGrad.length, `${name}: size`);
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < ref.length; i++)
      worst = Math.max(worst, Math.abs((ref[i] as number) - (ortGrad[i] as number)));
    assert.ok(
      worst <= 1e-4 * Math.max(scale, 1e-3),
      `${id} ${strategy} ${name}: max |ORT − TF.js| ${worst.toExponential(2)} (scale ${scale.toExponential(2)})`,
    );
  };
  compareOne(HEAD_WEIGHT, grads['head.w'] as tf.Tensor);
  compareOne(HEAD_BIAS, grads['head.b'] as tf.Tensor);
  let compared = 0;
  for (const [name, v] of tail.variables) {
    compareOne(name, grads[v.name] as tf.Tensor);
    compared++;
  }
  assert.equal(compared + 2, withCentre.params.length, 'every trained tensor compared');
  tf.dispose(Object.values(grads));
  tail.dispose();
  w.dispose();
  b.dispose();
}

test(
  'ResNet18 layer4 and layer3+layer4: ORT training-graph gradients equal TF.js, 1e-4',
  { timeout: 300_000 },
  async () => {
    await compare('resnet18-random', 'last-stage', 224);
    await compare('resnet18-random', 'last-two-stages', 224);
    await compare('resnet18-random', 'last-stage', 224, true);
  },
);

test(
  'ResNet18 full fine-tuning (stem, max pool, every stage): ORT gradients equal TF.js',
  { timeout: 300_000 },
  async () => {
    await compare('resnet18-random', 'full', 64);
  },
);

test(
  'SqueezeNet and MobileNetV2: fire modules, depthwise convolutions and Relu6 gradients equal TF.js',
  { timeout: 300_000 },
  async (t) => {
    if (needsShared) return t.skip('needs ../shared/models (SqueezeNet, MobileNetV2)');
    await compare('squeezenet1_1-imagenet', 'last-two-stages', 224);
    await compare('squeezenet1_1-imagenet', 'full', 64);
    await compare('mobilenetv2_035-imagenet', 'last-two-stages', 224);
    await compare('mobilenetv2_035-imagenet', 'full', 64);
  },
);
