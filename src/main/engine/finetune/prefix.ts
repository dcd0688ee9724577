// The frozen prefix's outputs, computed once per image and augmented view through ONNX Runtime (the cache
// both fine-tuning engines train from), and the class-balanced order of each epoch.

import type { AugmentSpec } from '../../../shared/augment.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { augmentImage } from '../augment/augment.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { evalCrop, normalizeInto, tensorSize } from '../image/preprocess.ts';
import { encodeModel, type OnnxModel } from '../onnx/model.ts';
import { cutAt, findFeatureTensor } from '../onnx/graph.ts';
import { backboneGraph } from '../backbones/backbone.ts';
import type { FinetuneStrategy } from '../../../shared/strategies.ts';
import { stageCut } from './stages.ts';
import { QueuedSession, ort, type SessionOptions } from '../onnx/session.ts';
import { Rng } from '../random.ts';

export interface TrainingImage {
  bytes: () => Uint8Array | Promise<Uint8Array>;
  label: number;
}

export interface CachedInput {
  data: Float32Array;
  shape: number[];
}

/** The prefix's outputs for every image and view, NCHW, computed once. */
export async function prefixInputs(
  entry: ResolvedBackbone,
  model: OnnxModel,
  cut: string,
  images: TrainingImage[],
  views: number,
  spec: AugmentSpec,
  seed: number,
  signal?: AbortSignal,
  onBatch?: (images: number) => void,
  sessionOptions: SessionOptions = {},
): Promise<CachedInput[][]> {
  const isInput = cut === model.graph.inputs[0]?.name;
  const session = isInput ? null : await QueuedSession.create(encodeModel(cutAt(model, cut)), sessionOptions);
  const size = tensorSize(entry.input);
  const out: CachedInput[][] = images.map(() => []);
  const { height: H, width: W } = entry.input;
  const batches: { v: number; start: number }[] = [];
  for (let v = 0; v < views; v++)
    for (let start = 0; start < images.length; start += 16) batches.push({ v, start });
  // Decoding and augmenting the next batch overlaps the runtime's work on this one.
  const prepare = async ({ v, start }: { v: number; start: number }): Promise<Float32Array> => {
    const batch = images.slice(start, start + 16);
    const tensor = new Float32Array(batch.length * size);
    await Promise.all(
      batch.map(async (img, k) => {
        const bytes = await img.bytes();
        const rgb =
          v === 0
            ? await evalCrop(bytes, entry.input)
            : (await augmentImage(bytes, spec, seed * 1_000_003 + (start + k) * 131 + v, entry.input)).image;
        normalizeInto(rgb, entry.input, tensor, k);
      }),
    );
    return tensor;
  };
  let next: Promise<Float32Array> | null = batches[0] ? prepare(batches[0]) : null;
  try {
    for (let i = 0; i < batches.length; i++) {
      if (signal?.aborted) throw new FewShotError('CANCELLED', 'Training cancelled.');
      const { start } = batches[i] as { v: number; start: number };
      const n = Math.min(16, images.length - start);
      const tensor = await (next as Promise<Float32Array>);
      const following = batches[i + 1];
      next = following ? prepare(following) : null;
      next?.catch(() => undefined); // awaited (and thrown) on the next turn
      if (!session) {
        for (let k = 0; k < n; k++)
          out[start + k]?.push({ data: tensor.slice(k * size, (k + 1) * size), shape: [3, H, W] });
        onBatch?.(n);
        continue;
      }
      const res = await session.run({ [entry.input.name]: new ort.Tensor('float32', tensor, [n, 3, H, W]) });
      const t = res[cut] as ort.Tensor;
      const per = (t.data as Float32Array).length / n;
      for (let k = 0; k < n; k++)
        out[start + k]?.push({
          data: (t.data as Float32Array).slice(k * per, (k + 1) * per),
          shape: t.dims.slice(1),
        });
      onBatch?.(n);
    }
  } finally {
    await session?.release();
  }
  return out;
}

/** One epoch's order: every class equally often (minority images repeat), shuffled, seeded. */
export function balancedOrder(labels: number[], rng: Rng): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => byClass.set(l, [...(byClass.get(l) ?? []), i]));
  const per = Math.max(...[...byClass.values()].map((v) => v.length));
  const out: number[] = [];
  for (const idx of byClass.values()) {
    const shuffled = rng.shuffle([...idx]);
    for (let k = 0; k < per; k++) out.push(shuffled[k % shuffled.length] as number);
  }
  return rng.shuffle(out);
}

export interface CachedRun {
  model: OnnxModel;
  features: string;
  cut: string;
  /** Per training image, its views; per validation image, its evaluation crop. */
  cached: CachedInput[][];
  valCached: CachedInput[][];
}

/**
 * The backbone graph, where the strategy cuts it, and the frozen prefix's outputs of every training image
 * and view (and of the validation images): what both fine-tuning engines start from. The caching is a
 * phase of its own, reported image by image, so the window shows it moving.
 */
export async function cacheFrozenPrefix(
  entry: ResolvedBackbone,
  strategy: FinetuneStrategy,
  train: TrainingImage[],
  validation: TrainingImage[],
  options: {
    views: number;
    augment: AugmentSpec;
    seed: number;
    signal?: AbortSignal | undefined;
    onPrefixProgress?: ((done: number, total: number) => void) | undefined;
  },
  sessionOptions: SessionOptions = {},
): Promise<CachedRun> {
  const model = backboneGraph(entry);
  const features = entry.output.name ?? findFeatureTensor(model);
  const cut = stageCut(model, entry.architecture, strategy);
  const total = train.length * options.views + validation.length;
  let done = 0;
  const onBatch = (n: number): void => {
    done += n;
    options.onPrefixProgress?.(done, total);
  };
  const { views, augment, seed, signal } = options;
  const cached = await prefixInputs(
    entry,
    model,
    cut,
    train,
    views,
    augment,
    seed,
    signal,
    onBatch,
    sessionOptions,
  );
  const valCached = validation.length
    ? await prefixInputs(entry, model, cut, validation, 1, augment, seed, signal, onBatch, sessionOptions)
    : [];
  return { model, features, cut, cached, valCached };
}
