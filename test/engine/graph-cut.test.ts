// Graph surgery: the part of a real network between two tensors (what fine-tuning's linear probe runs on
// the cached prefix) computes what the whole network computes from the same input.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { backboneGraph } from '../../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { stageCut } from '../../src/main/engine/finetune/stages.ts';
import { cutAt, findFeatureTensor } from '../../src/main/engine/onnx/graph.ts';
import { encodeModel } from '../../src/main/engine/onnx/model.ts';
import { ort } from '../../src/main/engine/onnx/session.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { GENERATED_MODELS, tmpDir, useModelDirs } from '../helpers/env.ts';

before(() => {
  useModelDirs(tmpDir('fsl-user-models-'));
  ensureRandomResNet18(GENERATED_MODELS);
});

async function run(
  model: ReturnType<typeof backboneGraph>,
  input: string,
  x: ort.Tensor,
): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(encodeModel(model));
  try {
    return (await s.run({ [input]: x }))[model.graph.outputs[0]?.name as string] as ort.Tensor;
  } finally {
    await s.release();
  }
}

test('ResNet18 from its layer3 output to its features equals the whole network after its prefix', async () => {
  const entry = resolveBackbone('resnet18-random');
  const model = backboneGraph(entry);
  const features = findFeatureTensor(model);
  const cut = stageCut(model, entry.architecture, 'last-stage');
  const rng = new Rng(3);
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 2 * 3 * 224 * 224 }, () => rng.normal()),
    [2, 3, 224, 224],
  );
  const whole = await run(cutAt(model, features), entry.input.name, x);
  const mid = await run(cutAt(model, cut), entry.input.name, x);
  const between = cutAt(model, features, null, cut);
  assert.deepEqual(
    between.graph.inputs.map((i) => i.name),
    [cut],
    'the cut tensor is the only input',
  );
  assert.ok(
    between.graph.nodes.every((n) => n.name.startsWith('layer4') || !n.name.startsWith('layer')),
    'only layer4 and what follows it',
  );
  assert.ok(between.graph.nodes.some((n) => n.name.startsWith('layer4')));
  assert.ok(between.graph.nodes.length < cutAt(model, features).graph.nodes.length / 2);
  const tail = await run(between, cut, mid);
  assert.deepEqual(tail.dims, whole.dims);
  const a = tail.data as Float32Array;
  const b = whole.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(
      worst,
      Math.abs((a[i] as number) - (b[i] as number)) / Math.max(1, Math.abs(b[i] as number)),
    );
  assert.ok(worst < 1e-5, `worst relative difference ${worst}`);
  // From the network's own input it is the plain cut; from a tensor the output does not depend on, an error.
  assert.equal(
    cutAt(model, features, null, entry.input.name).graph.nodes.length,
    cutAt(model, features).graph.nodes.length,
  );
  assert.throws(() => cutAt(model, cut, null, features), { code: 'MODEL_INVALID' });
  // Inside a residual block the shortcut passes the block's first convolution by: not a closed part.
  const conv = between.graph.nodes.find((n) => n.opType === 'Conv')?.outputs[0] as string;
  assert.throws(() => cutAt(model, features, null, conv), /other than through/);
});
