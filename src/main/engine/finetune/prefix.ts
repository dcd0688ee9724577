// The frozen prefix's outputs, computed once per image and augmented view through ONNX Runtime (the cache
// both fine-tuning engines train from), and the class-balanced order of each epoch.

import type { AugmentSpec } from '../../../shared/augment.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { augmentImage } from '../augment/augment.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { evalCrop, normalizeInto, tensorSize } from '../image/preprocess.ts';
import { cutAt } from '../onnx/graph.ts';
import { encodeModel, type OnnxModel } from '../onnx/model.ts';
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
  try {
    for (let v = 0; v < views; v++) {
      for (let start = 0; start < images.length; start += 16) {
        if (signal?.aborted) throw new FewShotError('CANCELLED', 'Training cancelled.');
        const batch = images.slice(start, start + 16);
        const tensor = new Float32Array(batch.length * size);
        await Promise.all(
          batch.map(async (img, k) => {
            const bytes = await img.bytes();
            const rgb =
              v === 0
                ? await evalCrop(bytes, entry.input)
                : (await augmentImage(bytes, spec, seed * 1_000_003 + (start + k) * 131 + v, entry.input))
                    .image;
            normalizeInto(rgb, entry.input, tensor, k);
          }),
        );
        const { height: H, width: W } = entry.input;
        if (!session) {
          batch.forEach((_, k) =>
            out[start + k]?.push({ data: tensor.slice(k * size, (k + 1) * size), shape: [3, H, W] }),
          );
          onBatch?.(batch.length);
          continue;
        }
        const res = await session.run({
          [entry.input.name]: new ort.Tensor('float32', tensor, [batch.length, 3, H, W]),
        });
        const t = res[cut] as ort.Tensor;
        const per = (t.data as Float32Array).length / batch.length;
        batch.forEach((_, k) =>
          out[start + k]?.push({
            data: (t.data as Float32Array).slice(k * per, (k + 1) * per),
            shape: t.dims.slice(1),
          }),
        );
        onBatch?.(batch.length);
      }
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
