// One training step and one batch of the frozen layers, measured on this machine with this project's
// images, classes and device: what the Train screen turns into the duration of a run before it starts.

import { FewShotError } from '../../../shared/errors.ts';
import type { FinetuneStrategy } from '../../../shared/strategies.ts';
import type { TrainMeasurement } from '../../../shared/train-estimate.ts';
import type { Project } from '../../store/project.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { backboneGraph } from '../backbones/backbone.ts';
import { DEFAULT_AUGMENT } from '../../../shared/augment.ts';
import { windowed } from '../image/windowing.ts';
import { findFeatureTensor } from '../onnx/graph.ts';
import { encodeModel } from '../onnx/model.ts';
import { nchwcBlockSize } from '../onnx/nchwc.ts';
import { resolveDevice } from '../onnx/providers.ts';
import { defaultThreads, deviceLabel, ort, QueuedSession } from '../onnx/session.ts';
import { Rng } from '../random.ts';
import { prefixInputs, type CachedInput } from './prefix.ts';
import { stageCut, trainedPart } from './stages.ts';
import { buildTrainGraphs, STEP_SCALARS } from './train-graph.ts';
import { finetuneData, perEpoch, planRun } from './train-finetune.ts';

export interface MeasureOptions {
  strategy: FinetuneStrategy;
  device?: 'cpu' | 'gpu' | 'auto';
  adaptBatchNorm?: boolean;
  batchSize?: number;
  views?: number;
  threads?: number;
  signal?: AbortSignal;
}

export async function measureFinetune(
  project: Project,
  entry: ResolvedBackbone,
  options: MeasureOptions,
): Promise<TrainMeasurement> {
  const data = finetuneData(project);
  const batchSize = options.batchSize ?? 16;
  const views = options.views ?? 4;
  const threads = options.threads ?? defaultThreads();
  const session = { threads, device: options.device ?? 'auto' } as const;
  const model = backboneGraph(entry);
  const features = entry.output.name ?? findFeatureTensor(model);
  const cut = stageCut(model, entry.architecture, options.strategy);
  const C = data.classes.length;

  // The frozen layers on one batch of this project's own images (decoding and augmentation included).
  const sample = new Rng(1).shuffle(data.images.map((_, i) => i)).slice(0, batchSize);
  const images = sample.map((i) => ({
    bytes: () =>
      windowed(
        project.images.bytes(data.images[i]?.sha256 as string) ?? new Uint8Array(0),
        project.highBitDepth(),
      ),
    label: 0,
  }));
  await prefixInputs(
    entry,
    model,
    cut,
    images.slice(0, 2),
    2,
    DEFAULT_AUGMENT,
    0,
    options.signal,
    undefined,
    session,
  ); // warm-up
  const t0 = performance.now();
  const cached = await prefixInputs(
    entry,
    model,
    cut,
    images,
    2,
    DEFAULT_AUGMENT,
    0,
    options.signal,
    undefined,
    session,
  );
  const prefixSecondsPerImage = (performance.now() - t0) / 1000 / (images.length * 2);
  if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'The estimate was cancelled.');

  // One real optimisation step after a warm-up step, on the device the run will use.
  const inputShape = (cached[0]?.[0] as CachedInput).shape;
  const graphs = buildTrainGraphs({
    model,
    cut,
    features,
    inputShape,
    classes: C,
    optimizer: 'adam',
    adaptBatchNorm: options.adaptBatchNorm ?? false,
    nchwcBlock: (await resolveDevice(session.device)).provider === 'cpu' ? await nchwcBlockSize() : 0,
  });
  const step = await QueuedSession.create(encodeModel(graphs.step), {
    ...session,
    recordPlacement: true,
    memoryPattern: false,
  });
  try {
    const per = inputShape.reduce((a, b) => a * b, 1);
    const x = new Float32Array(batchSize * per);
    cached.forEach((c, i) => x.set((c[1] as CachedInput).data, i * per));
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', x, [batchSize, ...inputShape]),
      targets: new ort.Tensor('float32', new Float32Array(batchSize * C).fill(1 / C), [batchSize, C]),
      sampleWeights: new ort.Tensor('float32', new Float32Array(batchSize).fill(1 / batchSize), [batchSize]),
    };
    for (const s of STEP_SCALARS)
      feeds[s] = new ort.Tensor('float32', Float32Array.of(s === 'clipNorm' ? 1e30 : 1e-4), []);
    for (const p of graphs.params) {
      feeds[p.name] = new ort.Tensor('float32', p.init, p.dims);
      feeds[`m.${p.name}`] = new ort.Tensor('float32', new Float32Array(p.init.length), p.dims);
      feeds[`v.${p.name}`] = new ort.Tensor('float32', new Float32Array(p.init.length), p.dims);
    }
    for (const s of graphs.statistics) feeds[s.name] = new ort.Tensor('float32', s.init, s.dims);
    await step.run(feeds);
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'The estimate was cancelled.');
    const t1 = performance.now();
    await step.run(feeds);
    const stepSeconds = (performance.now() - t1) / 1000;
    const placement = await step.placement().catch(() => null);

    // The run's plan: the same split and folds trainFinetuneModel makes.
    const { split, folds } = planRun(data, 0);
    const fold = folds?.[0];
    return {
      backbone: entry.id,
      strategy: options.strategy,
      trained: trainedPart(entry.architecture, options.strategy),
      device: deviceLabel(step.device),
      deviceNote: step.device.note,
      cpuNodes: placement ? placement.cpuNodes : null,
      stepSeconds,
      prefixSecondsPerImage,
      batchSize,
      views,
      plan: {
        trainImages: split.train.length,
        perEpoch: perEpoch(data.y, split.train, C),
        validationImages: split.test.length,
        runs: folds ? folds.length + 1 : 1,
        foldImages: fold?.train.length ?? 0,
        foldPerEpoch: fold ? perEpoch(data.y, fold.train, C) : 0,
      },
    };
  } finally {
    await step.release();
  }
}
