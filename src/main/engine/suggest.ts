// A suggested class for each unlabelled image of a project, ranked most uncertain first: the images whose
// label would teach the model most (smallest gap between its first and second choice).

import { FewShotError, type ErrorData } from '../../shared/errors.ts';
import type { LabelSuggestion, ModelRecord, SuggestResult } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import type { ImageRecord } from '../store/images-repo.ts';
import type { Project } from '../store/project.ts';
import type { Backbone } from './backbones/backbone.ts';
import { embedAll } from './features/pipeline.ts';
import { computeFeatures } from './features/project-features.ts';
import { modelHighBitDepth, windowed } from './image/windowing.ts';
import type { ModelRunner } from './model-runner.ts';

export const DEFAULT_SUGGESTION_LIMIT = 500;

export interface SuggestOptions {
  /** The model's backbone, loaded: needed by a head on frozen features (the project's feature cache). */
  backbone?: Backbone;
  limit?: number;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: { phase: string; done: number; total: number; failed: number }) => void;
}

/** One image's suggestion from its probabilities in the model's class order. */
export function suggestionOf(img: ImageRecord, classes: string[], probabilities: number[]): LabelSuggestion {
  let first = 0;
  for (let c = 1; c < probabilities.length; c++)
    if ((probabilities[c] as number) > (probabilities[first] as number)) first = c;
  let second = -Infinity;
  probabilities.forEach((p, c) => {
    if (c !== first && p > second) second = p;
  });
  const confidence = probabilities[first] as number;
  return {
    imageId: img.id,
    relPath: img.relPath,
    predicted: classes[first] as string,
    confidence,
    probabilities,
    margin: confidence - (Number.isFinite(second) ? second : 0),
  };
}

/** Most uncertain first (smallest margin); equal margins by file path, then id, so reruns agree. */
export function rankSuggestions(list: LabelSuggestion[]): LabelSuggestion[] {
  return [...list].sort(
    (a, b) =>
      a.margin - b.margin ||
      (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0) ||
      a.imageId - b.imageId,
  );
}

/** The runner's class order mapped onto the model's (they agree for every model this app stores). */
function classOrder(model: ModelRecord, runner: ModelRunner): number[] {
  const order = model.classes.map((c) => runner.classes.indexOf(c));
  if (order.some((i) => i < 0) || runner.classes.length !== model.classes.length)
    throw new FewShotError('MODEL_INVALID', `Model ${model.id} does not carry the classes it lists.`);
  return order;
}

export async function suggestClasses(
  project: Project,
  runner: ModelRunner,
  model: ModelRecord,
  options: SuggestOptions = {},
): Promise<SuggestResult> {
  const images = project.images.list().filter((img) => img.className === null);
  const byId = new Map(images.map((img) => [img.id, img]));
  const order = classOrder(model, runner);
  const signal = options.signal ? { signal: options.signal } : {};
  const suggestions: LabelSuggestion[] = [];
  const failed: SuggestResult['failed'] = [];
  const fail = (imageId: number, error: ErrorData): void => {
    failed.push({
      imageId,
      relPath: byId.get(imageId)?.relPath ?? '',
      code: error.code,
      message: error.message,
    });
  };
  const add = (img: ImageRecord, raw: ArrayLike<number>): void => {
    suggestions.push(
      suggestionOf(
        img,
        model.classes,
        order.map((i) => raw[i] as number),
      ),
    );
  };

  if (isFinetuned(model)) {
    // The whole network is the model: the stored images go through it, read as its training images were.
    const policy = modelHighBitDepth(model);
    const items = images.map((img) => ({
      item: img,
      load: () => {
        const b = project.images.bytes(img.sha256);
        if (!b) throw new FewShotError('NOT_FOUND', 'The image has no stored bytes in the project.');
        return windowed(b, policy);
      },
    }));
    let done = 0;
    options.onProgress?.({ phase: 'classifying', done, total: images.length, failed: 0 });
    for await (const batch of embedAll(runner.embedder, items, {
      batchSize: options.batchSize ?? 16,
      ...signal,
    })) {
      for (const r of batch) {
        if (r.ok) add(r.item, runner.probabilities(r.vector));
        else fail(r.item.id, r.error);
      }
      done += batch.length;
      options.onProgress?.({ phase: 'classifying', done, total: images.length, failed: failed.length });
    }
  } else {
    const backbone = options.backbone;
    if (!backbone || backbone.id !== model.backboneId)
      throw new FewShotError('INTERNAL', 'A head on frozen features needs its backbone loaded.');
    // Features come from the project's cache (computed now for images that have none yet).
    const run = await computeFeatures(project, backbone, {
      images,
      batchSize: options.batchSize ?? 16,
      ...signal,
      onProgress: (p) => options.onProgress?.({ phase: 'features', ...p }),
    });
    for (const e of run.errors) fail(e.imageId, e.error);
    const failedIds = new Set(run.errors.map((e) => e.imageId));
    const view = project.featureView();
    for (const img of images) {
      if (failedIds.has(img.id)) continue;
      const v = project.features.get(img.sha256, backbone.id, view);
      if (v) add(img, runner.probabilities(v));
      else fail(img.id, { code: 'INTERNAL', message: 'The image has no features in the project cache.' });
    }
  }
  if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Cancelled.');

  failed.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : a.imageId - b.imageId));
  return {
    modelId: model.id,
    classes: [...model.classes],
    unlabelled: images.length,
    suggestions: rankSuggestions(suggestions).slice(0, options.limit ?? DEFAULT_SUGGESTION_LIMIT),
    failed,
  };
}
