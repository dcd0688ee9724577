import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { loadDataset } from '../../src/main/engine/classify/dataset.ts';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { evaluate } from '../../src/main/engine/evaluate/evaluate.ts';
import { balancedOrder, finetune, type TrainingImage } from '../../src/main/engine/finetune/finetune.ts';
import { finetuneTfjs } from '../../src/main/engine/finetune/finetune-tfjs.ts';
import { OnnxClassifier } from '../../src/main/engine/onnx/onnx-classifier.ts';
import { buildTail, lastStageCut } from '../../src/main/engine/finetune/tail-graph.ts';
import { evaluateFinetune } from '../../src/main/engine/finetune/train-finetune.ts';
import { initTf, tf } from '../../src/main/engine/finetune/tf-backend.ts';
import { evalCrop, normalizeInto, tensorSize } from '../../src/main/engine/image/preprocess.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { cutAt } from '../../src/main/engine/onnx/graph.ts';
import { decodeModel, encodeModel } from '../../src/main/engine/onnx/model.ts';
import { QueuedSession, ort } from '../../src/main/engine/onnx/session.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { Project } from '../../src/main/store/project.ts';
import { DEFAULT_AUGMENT } from '../../src/shared/augment.ts';
import { BCCD, GENERATED_MODELS, needsShared, SQUEEZENET, tmpDir, useModelDirs } from '../helpers/env.ts';
import { noiseJpeg } from '../helpers/images.ts';

before(async () => {
  useModelDirs(tmpDir('fsl-user-models-'));
  ensureRandomResNet18(GENERATED_MODELS);
  await initTf('wasm');
});

/** Largest relative difference between the TF.js tail and ORT, both fed the ORT prefix's output for x. */
async function tailVersusOrt(
  trained: ReturnType<typeof decodeModel>,
  cut: string,
  features: string,
  x: Float32Array,
): Promise<number> {
  const feed = { input: new ort.Tensor('float32', x, [1, 3, 224, 224]) };
  const prefix = await QueuedSession.create(encodeModel(cutAt(trained, cut)));
  const mid = (await prefix.run(feed))[cut] as ort.Tensor;
  await prefix.release();
  const full = await QueuedSession.create(encodeModel(cutAt(trained, features)));
  const ortFeatures = (await full.run(feed))[features]?.data as Float32Array;
  await full.release();
  const tail = buildTail(trained, cut, features);
  const tfFeatures = tf
    .tidy(() =>
      tail.forward(
        tf.transpose(
          tf.tensor4d(mid.data as Float32Array, mid.dims as [number, number, number, number]),
          [0, 2, 3, 1],
        ),
      ),
    )
    .dataSync();
  tail.dispose();
  let worst = 0;
  for (let i = 0; i < ortFeatures.length; i++)
    worst = Math.max(
      worst,
      Math.abs((ortFeatures[i] as number) - (tfFeatures[i] as number)) /
        Math.max(1, Math.abs(ortFeatures[i] as number)),
    );
  return worst;
}

/** n BCCD crops per class as training images (or noise images when ../shared is absent). */
async function images(perClass: number, offset = 0): Promise<{ classes: string[]; items: TrainingImage[] }> {
  const classes = ['Platelets', 'RBC', 'WBC'];
  const items: TrainingImage[] = [];
  for (const [k, c] of classes.entries()) {
    const files = needsShared
      ? []
      : fs
          .readdirSync(path.join(BCCD, c))
          .sort()
          .slice(offset, offset + perClass);
    for (let i = 0; i < perClass; i++) {
      const bytes = files[i]
        ? fs.readFileSync(path.join(BCCD, c, files[i] as string))
        : await noiseJpeg(40 + k * 7, 40, i + k * 100);
      items.push({ bytes: () => bytes, label: k });
    }
  }
  return { classes, items };
}

test(
  'ResNet18 last-stage: only layer4 (and the head) change; the written-back graph runs in ORT and agrees with TF.js',
  { timeout: 240_000 },
  async () => {
    const entry = resolveBackbone('resnet18-random');
    const { classes, items } = await images(4);
    const r = await finetune(entry, classes, items, {
      strategy: 'last-stage',
      epochs: 2,
      augment: DEFAULT_AUGMENT,
      seed: 3,
      views: 2,
      batchSize: 8,
    });
    assert.match(r.runtime, /^onnxruntime-node \S+, cpu/);
    assert.ok(
      r.trainable.length > 0 && r.trainable.every((n) => n.startsWith('layer4.')),
      r.trainable.join(','),
    );
    assert.equal(r.trainable.filter((n) => n.endsWith('.weight') && n.includes('conv')).length, 4);
    const original = decodeModel(fs.readFileSync(entry.path));
    const trained = decodeModel(r.onnx);
    const after = new Map(trained.graph.initializers.map((t) => [t.name, t]));
    let unchanged = 0;
    for (const t of original.graph.initializers) {
      if (t.name.startsWith('fc.')) continue; // the ImageNet classifier is replaced by the new head
      const u = after.get(t.name);
      assert.ok(u, `${t.name} kept (have ${[...after.keys()].slice(-6).join(', ')})`);
      const same = Buffer.from(t.raw).equals(Buffer.from(u.raw));
      if (t.name.startsWith('layer4.') && !/running_(mean|var)$/.test(t.name)) continue;
      assert.ok(same, `${t.name} must be byte-identical`);
      unchanged++;
    }
    assert.equal(unchanged, 85); // 100 backbone tensors less layer4's 5 conv weights and 5 × 2 BatchNorm scales and shifts
    const changed = original.graph.initializers
      .filter((t) => t.name === 'layer4.1.conv2.weight')
      .every((t) => !Buffer.from(t.raw).equals(Buffer.from(after.get(t.name)?.raw ?? [])));
    assert.ok(changed, 'layer4 was trained');
    // The exported network classifies through ORT.
    const c = await OnnxClassifier.load(r.onnx, entry.input);
    const x = new Float32Array(tensorSize(entry.input));
    normalizeInto(await evalCrop(await (items[0] as TrainingImage).bytes(), entry.input), entry.input, x, 0);
    const p = await c.embed(x, 1);
    assert.equal(p.length, 3);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    await c.release();

    // TF.js tail of the trained graph vs ORT on the same prefix output, to 1e-4.
    const cut = lastStageCut(trained, 'resnet18');
    const worst = await tailVersusOrt(trained, cut, 'flatten_output', x);
    assert.ok(worst < 1e-4, `TF.js vs ORT: ${worst}`);
  },
);

test(
  'several steps in one runtime call (a Loop) give the same weights, bit for bit, as one call per step',
  { timeout: 240_000 },
  async () => {
    // 12 images in batches of 4: three steps of one size per epoch, so calls of 3 and of 2 + 1 steps run.
    const { classes, items } = await images(4);
    const runs: [string, 'last-stage' | 'last-two-stages', boolean][] = [
      ['resnet18-random', 'last-stage', true], // BatchNorm statistics adapted: carried from step to step
      [needsShared ? 'resnet18-random' : SQUEEZENET, 'last-two-stages', false],
    ];
    for (const [id, strategy, adaptBatchNorm] of runs) {
      const opts = {
        strategy,
        epochs: 2,
        augment: DEFAULT_AUGMENT,
        seed: 4,
        views: 2,
        batchSize: 4,
        adaptBatchNorm,
      };
      const losses: number[][] = [];
      const record = (to: number[]) => (p: { loss: number; epochEnd?: true }) => {
        if (!p.epochEnd) to.push(p.loss);
      };
      const one = await finetune(resolveBackbone(id), classes, items, {
        ...opts,
        stepsPerCall: 1,
        onProgress: record((losses[0] = [])),
      });
      const three = await finetune(resolveBackbone(id), classes, items, {
        ...opts,
        stepsPerCall: 3,
        onProgress: record((losses[1] = [])),
      });
      const two = await finetune(resolveBackbone(id), classes, items, { ...opts, stepsPerCall: 2 });
      assert.equal(one.steps, 6);
      assert.equal(three.steps, 6);
      assert.deepEqual(losses[1], losses[0], `${id} ${strategy}: per-step losses`);
      assert.equal(three.weightsSha256, one.weightsSha256, `${id} ${strategy}: 3 steps per call`);
      assert.equal(two.weightsSha256, one.weightsSha256, `${id} ${strategy}: 2 + 1 steps per call`);
      assert.ok(Buffer.from(three.onnx).equals(Buffer.from(one.onnx)));
    }
  },
);

test(
  'fine-tuning is reproducible: same seed and data give the same weights',
  { timeout: 120_000 },
  async () => {
    const entry = resolveBackbone(needsShared ? 'resnet18-random' : SQUEEZENET);
    const { classes, items } = await images(3);
    const opts = { strategy: 'last-stage' as const, epochs: 2, augment: DEFAULT_AUGMENT, seed: 9, views: 2 };
    const a = await finetune(entry, classes, items, opts);
    const b = await finetune(entry, classes, items, opts);
    const c = await finetune(entry, classes, items, { ...opts, seed: 10 });
    assert.equal(a.weightsSha256, b.weightsSha256);
    assert.notEqual(a.weightsSha256, c.weightsSha256);
    assert.ok(Buffer.from(a.onnx).equals(Buffer.from(b.onnx)));
  },
);

test(
  'full fine-tuning runs end to end; cancelling stops at a batch boundary',
  { skip: needsShared, timeout: 240_000 },
  async () => {
    const entry = resolveBackbone(SQUEEZENET);
    const { classes, items } = await images(2);
    const r = await finetune(entry, classes, items, {
      strategy: 'full',
      epochs: 1,
      augment: DEFAULT_AUGMENT,
      seed: 1,
      views: 1,
      batchSize: 6,
    });
    assert.ok(
      r.trainable.some((n) => n.startsWith('conv1')),
      'the first convolution trains too',
    );
    const c = await OnnxClassifier.load(r.onnx, entry.input);
    await c.release();
    const controller = new AbortController();
    const run = finetune(entry, classes, items, {
      strategy: 'last-stage',
      epochs: 50,
      augment: DEFAULT_AUGMENT,
      views: 1,
      batchSize: 2,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === 2) controller.abort();
      },
    });
    await assert.rejects(run, { code: 'CANCELLED' });
  },
);

test('balanced sampling gives every class the same share of an epoch', () => {
  const order = balancedOrder([0, 0, 0, 0, 0, 0, 1, 1, 2], new Rng(1));
  const counts = [0, 1, 2].map((c) => order.filter((i) => [0, 0, 0, 0, 0, 0, 1, 1, 2][i] === c).length);
  assert.deepEqual(counts, [6, 6, 6]);
});

let project: Project | undefined;
let backbone: Backbone | undefined;
after(async () => {
  await backbone?.release();
  project?.close();
});

test(
  'BCCD 3-way 10-shot with SqueezeNet: last-stage ≥ linear − 1 point over 5 seeded episodes, and within 1 point of the TF.js engine',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    project = Project.create(path.join(tmpDir(), 'ft.fsl'));
    await importFolder(project, BCCD, { groupsCsv: path.join(BCCD, 'groups.csv') });
    const entry = resolveBackbone(SQUEEZENET);
    backbone = await Backbone.load(entry);
    const protocol = { kind: 'episodes' as const, shots: 10, episodes: 5, queries: 15 };
    const linear = evaluate(await loadDataset(project, backbone), { strategy: 'linear', protocol, seed: 1 });
    const lastStage = await evaluateFinetune(project, entry, protocol, {
      strategy: 'last-stage',
      seed: 1,
      augment: DEFAULT_AUGMENT,
    });
    assert.equal(lastStage.episodes, 5);
    assert.ok(lastStage.accuracy.ci95[0] < lastStage.accuracy.mean || lastStage.accuracy.mean === 1);
    assert.ok(
      lastStage.accuracy.mean >= linear.accuracy.mean - 0.01,
      `last-stage ${lastStage.accuracy.mean} vs linear ${linear.accuracy.mean}`,
    );
    // The same episodes, seeds and settings through the TensorFlow.js engine (the oracle).
    const oracle = await evaluateFinetune(
      project,
      entry,
      protocol,
      { strategy: 'last-stage', seed: 1, augment: DEFAULT_AUGMENT },
      finetuneTfjs,
    );
    assert.ok(
      Math.abs(lastStage.accuracy.mean - oracle.accuracy.mean) <= 0.01,
      `ONNX Runtime ${lastStage.accuracy.mean} vs TF.js ${oracle.accuracy.mean}`,
    );
  },
);

test(
  'a run stopped after a checkpoint resumes to the same weights as an uninterrupted run',
  { timeout: 180_000 },
  async () => {
    const entry = resolveBackbone(needsShared ? 'resnet18-random' : SQUEEZENET);
    const { classes, items } = await images(3);
    const opts = {
      strategy: 'last-stage' as const,
      epochs: 4,
      augment: DEFAULT_AUGMENT,
      seed: 5,
      views: 2,
      batchSize: 4,
    };
    const whole = await finetune(entry, classes, items, opts);

    let stored: Buffer | null = null;
    const saves: number[] = [];
    const crashing = {
      load: () => stored,
      save: (epoch: number, state: Buffer) => {
        stored = state;
        saves.push(epoch);
        if (epoch === 2) throw new Error('power cut after epoch 2');
      },
    };
    await assert.rejects(finetune(entry, classes, items, { ...opts, checkpoint: crashing }), /power cut/);
    assert.deepEqual(saves, [1, 2]);
    const resumed = await finetune(entry, classes, items, {
      ...opts,
      checkpoint: { load: () => stored, save: (e, s) => ((stored = s), saves.push(e)) },
    });
    assert.deepEqual(saves, [1, 2, 3, 4], 'only the remaining epochs ran');
    assert.equal(resumed.history.length, 4);
    assert.equal(resumed.weightsSha256, whole.weightsSha256);
  },
);

test(
  'with adapted BatchNorm, the running statistics of the trained stage change and are written back',
  { timeout: 180_000 },
  async () => {
    const entry = resolveBackbone('resnet18-random');
    const { classes, items } = await images(3);
    const r = await finetune(entry, classes, items, {
      strategy: 'last-stage',
      epochs: 1,
      augment: DEFAULT_AUGMENT,
      seed: 2,
      views: 1,
      batchSize: 9,
      adaptBatchNorm: true,
    });
    assert.equal(r.settings.batchNorm, 'statistics adapted (batch statistics in training)');
    const original = new Map(
      decodeModel(fs.readFileSync(entry.path)).graph.initializers.map((t) => [t.name, t.raw]),
    );
    const trained = decodeModel(r.onnx).graph.initializers;
    const stat = (name: string) => Buffer.from(trained.find((t) => t.name === name)?.raw ?? []);
    assert.ok(
      !stat('layer4.1.bn2.running_mean').equals(Buffer.from(original.get('layer4.1.bn2.running_mean') ?? [])),
      'layer4 statistics adapted',
    );
    assert.ok(
      stat('layer3.1.bn2.running_mean').equals(Buffer.from(original.get('layer3.1.bn2.running_mean') ?? [])),
      'earlier statistics untouched',
    );
    const c = await OnnxClassifier.load(r.onnx, entry.input);
    await c.release();
  },
);

test(
  'MobileNetV2 (converted from TF.js) last-stage: the last inverted-residual block and Conv_1 train, depthwise included',
  { skip: needsShared, timeout: 180_000 },
  async () => {
    const entry = resolveBackbone('mobilenetv2_035-imagenet');
    const { classes, items } = await images(3);
    const r = await finetune(entry, classes, items, {
      strategy: 'last-stage',
      epochs: 2,
      augment: DEFAULT_AUGMENT,
      seed: 1,
      views: 2,
    });
    assert.ok(r.trainable.includes('block_16_depthwise.weight'), r.trainable.join(','));
    assert.ok(
      r.trainable.every((n) => n.startsWith('block_16_') || n.startsWith('Conv_1')),
      r.trainable.join(','),
    );
    const trained = decodeModel(r.onnx);
    const cut = lastStageCut(trained, 'mobilenet_v2');
    const x = new Float32Array(tensorSize(entry.input));
    normalizeInto(await evalCrop(await (items[0] as TrainingImage).bytes(), entry.input), entry.input, x, 0);
    const worst = await tailVersusOrt(trained, cut, 'features', x);
    assert.ok(worst < 1e-4, `TF.js vs ORT: ${worst}`);
  },
);

test(
  'with under 10 images per class the number of epochs is chosen by cross-validation',
  { skip: needsShared, timeout: 180_000 },
  async () => {
    const { trainFinetuneModel } = await import('../../src/main/engine/finetune/train-finetune.ts');
    const root = tmpDir('fsl-small-ft-');
    for (const c of ['WBC', 'RBC', 'Platelets']) {
      fs.mkdirSync(path.join(root, c));
      for (const f of fs.readdirSync(path.join(BCCD, c)).sort().slice(0, 5))
        fs.copyFileSync(path.join(BCCD, c, f), path.join(root, c, f));
    }
    const p = Project.create(path.join(tmpDir(), 'small.fsl'));
    await importFolder(p, root);
    const r = await trainFinetuneModel(p, resolveBackbone(SQUEEZENET), {
      strategy: 'last-stage',
      epochs: 3,
      seed: 2,
      views: 1,
      augment: DEFAULT_AUGMENT,
    });
    assert.match(String(r.params.epochsChosenBy), /cross-validation/);
    assert.ok(typeof r.params.epochs === 'number' && r.params.epochs >= 1 && r.params.epochs <= 3);
    assert.equal(r.images, 15, 'every image trains the final model');
    p.close();
  },
);

test(
  "an evaluation's split models are made as the model is: a validation split of their training images (≥ 10 a class), none below",
  { skip: needsShared, timeout: 300_000 },
  async () => {
    const root = tmpDir('fsl-inner-');
    for (const cls of ['Platelets', 'RBC', 'WBC']) {
      fs.mkdirSync(path.join(root, cls));
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 15))
        fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
    }
    const p = Project.create(path.join(tmpDir(), 'inner.fsl'));
    await importFolder(p, root);
    const entry = resolveBackbone(SQUEEZENET);
    const seen: { train: number; validation: number }[] = [];
    // The real engine, with what each split's model was given written down.
    const observed: typeof finetune = (e, classes, train, options, validation = []) => {
      seen.push({ train: train.length, validation: validation.length });
      return finetune(e, classes, train, options, validation);
    };
    const options = {
      strategy: 'last-stage' as const,
      seed: 2,
      epochs: 1,
      views: 1,
      augment: DEFAULT_AUGMENT,
    };
    // 3-fold: 10 training images a class per fold → 8 train, 2 validation each.
    const folds = await evaluateFinetune(p, entry, { kind: 'kfold', folds: 3 }, options, observed);
    assert.equal(folds.testPredictions, 45);
    assert.deepEqual(
      seen,
      [0, 1, 2].map(() => ({ train: 24, validation: 6 })),
    );
    // A half hold-out: 7–8 training images a class, too few to hold a validation split out of.
    seen.length = 0;
    await evaluateFinetune(p, entry, { kind: 'holdout', testFraction: 0.5 }, options, observed);
    assert.equal(seen[0]?.validation, 0, `${JSON.stringify(seen)}: 7–8 a class hold nothing out`);
    p.close();
  },
);
