// One file through a trained model, as "Try an image" shows it: the prediction and its probabilities,
// decoded the way a batch run decodes new files (in a decode process, with the model's 16-bit policy),
// and the nearest training images of the model by cosine similarity of backbone features.

import { FewShotError } from '../../shared/errors.ts';
import type { ModelRecord, Neighbour, TryResult } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import type { Project } from '../store/project.ts';
import type { ImageRecord } from '../store/images-repo.ts';
import type { Backbone } from './backbones/backbone.ts';
import { DEFAULT_MIN_CONFIDENCE, readFileTyped } from './batch/classify-folder.ts';
import { argmax } from './classify/linalg.ts';
import { embedAll, type Embedder } from './features/pipeline.ts';
import { computeFeatures } from './features/project-features.ts';
import { DEFAULT_LIMITS } from './image/decode.ts';
import { DecodePool } from './image/decode-pool.ts';
import { modelHighBitDepth } from './image/windowing.ts';
import { loadModelRunner } from './model-runner.ts';

export interface TryOptions {
  name: string;
  /** How many nearest training images (default 6). */
  neighbours?: number;
  signal?: AbortSignal;
}

async function embedOne(
  embedder: Embedder,
  bytes: Uint8Array,
  pool: DecodePool,
  model: ModelRecord,
): Promise<Float32Array> {
  const policy = modelHighBitDepth(model);
  for await (const batch of embedAll(embedder, [{ item: 0, load: () => bytes }], {
    batchSize: 1,
    decodeWith: (b, spec) => pool.crop(b, spec, DEFAULT_LIMITS, policy),
  })) {
    const r = batch[0];
    if (r && !r.ok) throw new FewShotError(r.error.code, r.error.message);
    if (r?.ok) return r.vector;
  }
  throw new FewShotError('INTERNAL', 'The image gave no result.');
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** The model's training images nearest to `query` in `backbone`'s features (cached, computed if missing). */
export async function nearestTraining(
  project: Project,
  backbone: Backbone,
  model: ModelRecord,
  query: Float32Array,
  k: number,
  signal?: AbortSignal,
): Promise<Neighbour[]> {
  if (k === 0) return [];
  const view = project.featureView();
  const records = model.trainingSet
    .map((t) => ({ t, img: project.images.get(t.id) }))
    .filter((x): x is { t: (typeof model.trainingSet)[number]; img: ImageRecord } => x.img !== null);
  const missing = records
    .filter((x) => !project.features.has(x.img.sha256, backbone.id, view))
    .map((x) => x.img);
  if (missing.length)
    await computeFeatures(project, backbone, { images: missing, ...(signal ? { signal } : {}) });
  const scored: Neighbour[] = [];
  for (const { t, img } of records) {
    const v = project.features.get(img.sha256, backbone.id, view);
    if (v)
      scored.push({
        imageId: img.id,
        relPath: img.relPath,
        className: t.class,
        similarity: cosine(query, v),
      });
  }
  return scored.sort((a, b) => b.similarity - a.similarity || a.imageId - b.imageId).slice(0, k);
}

export async function tryFile(
  project: Project,
  model: ModelRecord,
  backbone: Backbone,
  file: string,
  options: TryOptions,
): Promise<TryResult> {
  const bytes = await readFileTyped(file);
  const pool = new DecodePool();
  const runner = await loadModelRunner(project, model, backbone);
  try {
    const vector = await embedOne(runner.embedder, bytes, pool, model);
    const p = Array.from(runner.probabilities(vector));
    const k = argmax(p);
    const finetuned = isFinetuned(model);
    // A fine-tuned graph answers with probabilities: the neighbours come from the original backbone.
    const query = finetuned ? await embedOne(backbone, bytes, pool, model) : vector;
    const neighbours = await nearestTraining(
      project,
      backbone,
      model,
      query,
      options.neighbours ?? 6,
      options.signal,
    );
    const confidence = p[k] as number;
    return {
      modelId: model.id,
      name: options.name,
      classes: runner.classes,
      probabilities: p,
      predicted: runner.classes[k] as string,
      confidence,
      uncertain: confidence < DEFAULT_MIN_CONFIDENCE,
      neighbours,
      neighboursBy: finetuned
        ? "the original backbone's features (before fine-tuning), since the fine-tuned network changed them"
        : "the backbone's features the model's head was trained on",
    };
  } finally {
    await runner.release();
    pool.close();
  }
}
