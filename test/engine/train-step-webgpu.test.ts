// The GPU path of training, checked without a GPU: one training step of ResNet18's layer4 (the generated
// graph: batch-wide products, BatchNorm, residual adds, the head, Adam) on ONNX Runtime's WebGPU provider
// gives the CPU provider's gradients and updated weights to 1e-4. Mesa's lavapipe gives WebGPU an adapter
// on the CPU; without one the test skips and says how to install it.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { backboneGraph } from '../../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { stageCut } from '../../src/main/engine/finetune/stages.ts';
import { buildTrainGraphs, HEAD_WEIGHT, STEP_SCALARS } from '../../src/main/engine/finetune/train-graph.ts';
import { findFeatureTensor } from '../../src/main/engine/onnx/graph.ts';
import { encodeModel } from '../../src/main/engine/onnx/model.ts';
import { ort, probeProvider, QueuedSession } from '../../src/main/engine/onnx/session.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { GENERATED_MODELS, tmpDir, useModelDirs } from '../helpers/env.ts';

before(() => {
  useModelDirs(tmpDir('fsl-user-models-'));
  ensureRandomResNet18(GENERATED_MODELS);
});

test(
  'a training step on WebGPU equals the CPU provider to 1e-4 (gradients and Adam update)',
  { timeout: 600_000 },
  async (t) => {
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    const probe = await probeProvider('webgpu');
    if (!probe.ok)
      return t.skip(
        `no WebGPU adapter (${probe.reason}). On Debian bookworm: apt-get install -t bookworm-backports mesa-vulkan-drivers`,
      );
    const entry = resolveBackbone('resnet18-random');
    const model = backboneGraph(entry);
    const cut = stageCut(model, 'resnet18', 'last-stage');
    const features = entry.output.name ?? findFeatureTensor(model);
    const rng = new Rng(5);
    const N = 2;
    const K = 3;
    const inputShape = [256, 14, 14];
    const graphs = buildTrainGraphs({
      model,
      cut,
      features,
      inputShape,
      classes: K,
      optimizer: 'adam',
      outputGradients: true,
    });
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor(
        'float32',
        Float32Array.from({ length: N * 256 * 196 }, () => Math.max(0, rng.normal())),
        [N, ...inputShape],
      ),
      targets: new ort.Tensor('float32', Float32Array.of(0.9, 0.05, 0.05, 0.05, 0.05, 0.9), [N, K]),
      sampleWeights: new ort.Tensor('float32', Float32Array.of(0.5, 0.5), [N]),
    };
    const scalars: Record<(typeof STEP_SCALARS)[number], number> = {
      lrHead: 1e-3,
      lrBackbone: 1e-4,
      weightDecay: 1e-4,
      clipNorm: 1e30,
      bc1: 10,
      bc2: 1000,
    };
    for (const s of STEP_SCALARS) feeds[s] = new ort.Tensor('float32', Float32Array.of(scalars[s]), []);
    for (const p of graphs.params) {
      const init = p.name === HEAD_WEIGHT ? Float32Array.from(p.init, () => rng.normal() * 0.1) : p.init;
      feeds[p.name] = new ort.Tensor('float32', init, p.dims);
      feeds[`m.${p.name}`] = new ort.Tensor('float32', new Float32Array(init.length), p.dims);
      feeds[`v.${p.name}`] = new ort.Tensor('float32', new Float32Array(init.length), p.dims);
    }
    const bytes = encodeModel(graphs.step);
    const run = async (
      device: 'cpu' | 'gpu',
    ): Promise<{ out: ort.InferenceSession.OnnxValueMapType; provider: string; cpuNodes: number }> => {
      const s = await QueuedSession.create(bytes, {
        device,
        threads: 2,
        recordPlacement: true,
        memoryPattern: false,
      });
      try {
        const out = await s.run(feeds);
        const placed = await s.placement();
        return { out, provider: s.device.provider, cpuNodes: placed.cpuNodes };
      } finally {
        await s.release();
      }
    };
    const cpu = await run('cpu');
    const gpu = await run('gpu');
    assert.equal(gpu.provider, 'webgpu', 'the step ran on WebGPU');
    t.diagnostic(`WebGPU step: ${gpu.cpuNodes} nodes fell back to the CPU`);
    let compared = 0;
    for (const name of Object.keys(cpu.out)) {
      if (!name.startsWith('grad.') && !name.startsWith('next.') && name !== 'loss') continue;
      const a = (cpu.out[name] as ort.Tensor).data as Float32Array;
      const b = (gpu.out[name] as ort.Tensor).data as Float32Array;
      let scale = 0;
      let worst = 0;
      for (let i = 0; i < a.length; i++) {
        scale = Math.max(scale, Math.abs(a[i] as number));
        worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
      }
      assert.ok(
        worst <= 1e-4 * Math.max(scale, 1e-3),
        `${name}: |WebGPU − CPU| ${worst.toExponential(2)} of ${scale.toExponential(2)}`,
      );
      compared++;
    }
    assert.ok(compared > 3 * graphs.params.length, `compared ${compared} outputs`);
  },
);
