import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone, featureGraph } from '../../src/main/engine/backbones/backbone.ts';
import { detectArchitecture, ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { listBackbones, resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { buildResNet18 } from '../../src/main/engine/backbones/resnet18.ts';
import { evalCrop, normalizeInto, tensorSize } from '../../src/main/engine/image/preprocess.ts';
import { decodeModel, encodeModel } from '../../src/main/engine/onnx/model.ts';
import { QueuedSession, ort } from '../../src/main/engine/onnx/session.ts';
import {
  BCCD,
  GENERATED_MODELS,
  needsShared,
  SHARED_MODELS,
  SQUEEZENET,
  tmpDir,
  useModelDirs,
} from '../helpers/env.ts';
import { runReference } from '../helpers/reference-onnx.ts';

before(() => {
  useModelDirs(tmpDir('fsl-user-models-'));
  ensureRandomResNet18(GENERATED_MODELS);
});

/** |a − b| ≤ tol · max(1, |b|) for every element; returns the worst scaled difference. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i] as number;
    worst = Math.max(worst, Math.abs((actual[i] as number) - e) / Math.max(1, Math.abs(e)));
  }
  assert.ok(worst <= tol, `worst scaled difference ${worst} > ${tol}`);
  return worst;
}

const backbones: Backbone[] = [];
after(async () => {
  for (const b of backbones) await b.release();
});

test(
  'SqueezeNet features through ORT equal a plain float64 reference computation',
  { skip: needsShared },
  async () => {
    const entry = resolveBackbone(SQUEEZENET);
    const backbone = await Backbone.load(entry, { threads: 2 });
    backbones.push(backbone);
    const files = ['WBC/BloodImage_00000_01.jpg', 'RBC/BloodImage_00000_04.jpg'].map((f) =>
      path.join(BCCD, f),
    );
    const size = tensorSize(backbone.spec);
    const batch = new Float32Array(files.length * size);
    for (const [i, f] of files.entries()) {
      const img = await evalCrop(fs.readFileSync(f), backbone.spec);
      normalizeInto(img, backbone.spec, batch, i);
      // The tensor itself, written the obvious way: BGR planes, minus the Caffe means, no scaling.
      const mean = [103.939, 116.779, 123.68];
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < 224 * 224; p += 997) {
          const expected = (img.data[p * 3 + (2 - c)] as number) - (mean[c] as number);
          assert.ok(Math.abs((batch[i * size + c * 224 * 224 + p] as number) - expected) < 1e-4);
        }
    }
    const ortOut = await backbone.embed(batch, files.length);
    const model = featureGraph(decodeModel(fs.readFileSync(entry.path)), entry.output.name);
    const ref = runReference(
      model,
      backbone.inputName,
      batch,
      [files.length, 3, 224, 224],
      backbone.outputName,
    );
    assert.equal(ortOut.length, files.length * 512);
    assert.ok(
      ref.some((v) => v > 1),
      'features are not trivially zero',
    );
    assertClose(ortOut, ref, 1e-4);
  },
);

test('the ResNet18 generator builds the torchvision topology', () => {
  const m = buildResNet18({ seed: 7, numClasses: 1000 });
  const names = m.graph.nodes.map((n) => n.name);
  for (const n of ['conv1', 'bn1', 'relu', 'maxpool', 'avgpool', 'flatten', 'fc'])
    assert.ok(names.includes(n), n);
  for (let l = 1; l <= 4; l++)
    for (let b = 0; b < 2; b++)
      for (const part of ['conv1', 'bn1', 'conv2', 'bn2'])
        assert.ok(names.includes(`layer${l}.${b}.${part}`), `layer${l}.${b}.${part}`);
  for (let l = 2; l <= 4; l++) {
    assert.ok(names.includes(`layer${l}.0.downsample.0`) && names.includes(`layer${l}.0.downsample.1`));
    assert.ok(!names.includes(`layer${l}.1.downsample.0`));
  }
  assert.ok(!names.includes('layer1.0.downsample.0'), 'layer1 keeps the identity shortcut');
  const count = (op: string) => m.graph.nodes.filter((n) => n.opType === op).length;
  assert.deepEqual(
    [count('Conv'), count('BatchNormalization'), count('Add'), count('Relu'), count('Gemm')],
    [20, 20, 8, 17, 1],
  );
  const params = m.graph.initializers
    .filter((t) => !/running_(mean|var)$/.test(t.name))
    .reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
  assert.equal(params, 11_689_512, "torchvision's resnet18 has 11,689,512 parameters");
  const byName = new Map(m.graph.initializers.map((t) => [t.name, t.dims]));
  assert.deepEqual(byName.get('layer4.1.conv2.weight'), [512, 512, 3, 3]);
  assert.deepEqual(byName.get('layer2.0.downsample.0.weight'), [128, 64, 1, 1]);
  assert.deepEqual(byName.get('fc.weight'), [1000, 512]);
  assert.equal(detectArchitecture(m), 'resnet18');
  // Seeded: same seed, same bytes; another seed, other weights.
  const a = encodeModel(buildResNet18({ seed: 3, numClasses: 10 }));
  const b = encodeModel(buildResNet18({ seed: 3, numClasses: 10 }));
  const c = encodeModel(buildResNet18({ seed: 4, numClasses: 10 }));
  assert.ok(Buffer.from(a).equals(Buffer.from(b)));
  assert.ok(!Buffer.from(a).equals(Buffer.from(c)));
});

test('the generated ResNet18 runs in ORT: logits [N,1000], 512-d pooled features equal the reference', async () => {
  const entry = resolveBackbone('resnet18-random');
  const full = await QueuedSession.create(entry.path, { threads: 2 });
  const input = new Float32Array(2 * 3 * 224 * 224).map((_, i) => Math.sin(i * 0.001) * 2);
  const out = await full.run({ input: new ort.Tensor('float32', input, [2, 3, 224, 224]) });
  assert.deepEqual(out.logits?.dims, [2, 1000]);
  await full.release();

  const backbone = await Backbone.load(entry, { threads: 2 });
  backbones.push(backbone);
  assert.equal(backbone.dim, 512);
  const one = input.subarray(0, 3 * 224 * 224);
  const feats = await backbone.embed(one, 1);
  const model = featureGraph(decodeModel(fs.readFileSync(entry.path)));
  assert.equal(backbone.outputName, 'flatten_output');
  const ref = runReference(model, 'input', one, [1, 3, 224, 224], backbone.outputName);
  assertClose(feats, ref, 1e-4);
});

test('the registry lists installed and missing backbones with how to install', { skip: needsShared }, () => {
  const list = listBackbones();
  const byId = new Map(list.map((b) => [b.id, b]));
  assert.equal(byId.get('resnet18-imagenet')?.present, false);
  assert.match(byId.get('resnet18-imagenet')?.install ?? '', /fewshot models add/);
  assert.equal(byId.get(SQUEEZENET)?.present, true);
  assert.equal(byId.get(SQUEEZENET)?.featureDim, 512);
  assert.equal(byId.get('mobilenetv2_035-imagenet')?.supported, true); // TF.js layers models are converted to ONNX on load
  assert.throws(() => resolveBackbone('resnet18-imagenet'), /not installed/);
  assert.throws(() => resolveBackbone('nope'), /No backbone "nope"/);
});

test(
  'a TF.js layers MobileNetV2 converts to an ONNX backbone whose features equal TF.js',
  { skip: needsShared, timeout: 120_000 },
  async () => {
    const tf = await import('@tensorflow/tfjs');
    const { convertTfjsLayers } = await import('../../src/main/engine/backbones/tfjs-import.ts');
    const dir = path.join(SHARED_MODELS, 'mobilenetv2_035-imagenet-tfjs');
    const converted = convertTfjsLayers(path.join(dir, 'model.json'));
    assert.deepEqual([converted.architecture, converted.featureDim], ['mobilenet_v2', 1280]);
    assert.ok(
      converted.model.graph.nodes.some(
        (n) =>
          n.opType === 'Conv' && n.attributes.some((a) => a.name === 'group' && a.type === 'int' && a.i > 1),
      ),
      'depthwise convolutions become grouped Conv',
    );
    const session = await QueuedSession.create(encodeModel(converted.model), { threads: 2 });
    const nhwc = new Float32Array(224 * 224 * 3).map((_, i) => Math.sin(i * 0.01));
    const nchw = new Float32Array(nhwc.length);
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++)
        for (let c = 0; c < 3; c++) nchw[c * 224 * 224 + y * 224 + x] = nhwc[(y * 224 + x) * 3 + c] as number;
    const onnxOut = (await session.run({ input: new ort.Tensor('float32', nchw, [1, 3, 224, 224]) })).features
      ?.data as Float32Array;
    await session.release();
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
      modelTopology: object;
      weightsManifest: { weights: never[] }[];
    };
    const weights = fs.readFileSync(path.join(dir, 'weights.bin'));
    tf.env().set('PROD', true);
    const m = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: (json.weightsManifest[0] as { weights: never[] }).weights,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
    const inner = (m.layers[0] as unknown as { layers: { predict(x: unknown): unknown }[] }).layers[0] as {
      predict(x: unknown): unknown;
    };
    const tfOut = tf.mean(inner.predict(tf.tensor4d(nhwc, [1, 224, 224, 3])) as never, [1, 2]).dataSync();
    assertClose(onnxOut, tfOut, 1e-4);

    // The shared manifest's TF.js entry now loads like any backbone.
    const b = await Backbone.load(resolveBackbone('mobilenetv2_035-imagenet'), { threads: 2 });
    backbones.push(b);
    assert.equal(b.dim, 1280);
    assert.equal(b.spec.layout, 'NCHW');
  },
);
