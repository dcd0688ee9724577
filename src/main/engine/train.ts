// Training a head on a project's labelled images: features from the cache, a fitted head, an estimate of
// its accuracy by cross-validation, and a model row that records everything needed to reproduce it.

import { FewShotError } from '../../shared/errors.ts';
import type { Project } from '../store/project.ts';
import type { Backbone } from './backbones/backbone.ts';
import { loadDataset } from './classify/dataset.ts';
import { fitHead, LINEAR_MAX_ITERATIONS, type Strategy } from './classify/heads.ts';
import { serializeHead } from './classify/serialize.ts';
import { evaluate, modelEstimate, type Protocol } from './evaluate/evaluate.ts';
import { softwareVersions } from './versions.ts';
import type { TrainResult } from '../../shared/results.ts';

export type { TrainResult };

export interface TrainOptions {
  strategy: Strategy;
  seed?: number;
  name?: string;
  classBalanced?: boolean;
  weightDecay?: number;
  /** Cross-validate the same settings to store an accuracy estimate with the model (default true). */
  estimate?: boolean;
  signal?: AbortSignal;
  /** The job's row, created by the caller; without one the run records its own. */
  jobId?: string;
  onProgress?: (p: {
    phase: 'features' | 'fit' | 'estimate';
    done: number;
    total: number;
    loss?: number;
  }) => void;
}

/** 5-fold when every class has at least five images, leave-one-(group-)out below that. */
export function estimateProtocol(counts: number[]): Protocol {
  return Math.min(...counts) >= 5 ? { kind: 'kfold', folds: 5 } : { kind: 'loo' };
}

export async function trainModel(
  project: Project,
  backbone: Backbone,
  options: TrainOptions,
): Promise<TrainResult> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const jobId =
    options.jobId ??
    project.jobs.create('train', { backbone: backbone.id, strategy: options.strategy, seed });
  try {
    const data = await loadDataset(project, backbone, {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ phase: 'features', done: p.done, total: p.total }),
    });
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Training cancelled.');
    options.onProgress?.({ phase: 'fit', done: 0, total: 1 });
    const fitOptions = {
      seed,
      ...(options.classBalanced !== undefined ? { classBalanced: options.classBalanced } : {}),
      ...(options.weightDecay !== undefined ? { weightDecay: options.weightDecay } : {}),
    };
    const head = fitHead(
      options.strategy,
      { x: data.x, y: data.y, classes: data.classes },
      {
        ...fitOptions,
        onIteration: (done, loss) =>
          options.onProgress?.({ phase: 'fit', done, total: LINEAR_MAX_ITERATIONS, loss }),
      },
    );
    let estimate: TrainResult['estimate'] = null;
    if (options.estimate ?? true) {
      const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
      const r = evaluate(data, {
        strategy: options.strategy,
        protocol: estimateProtocol(counts),
        seed,
        fit: fitOptions,
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (done, total) => options.onProgress?.({ phase: 'estimate', done, total }),
      });
      estimate = modelEstimate(r);
    }
    const params: Record<string, unknown> = {
      temperature: head.temperature,
      features: 'SimpleShot CL2N (centre on training mean, L2-normalise)',
      ...(head.kind === 'linear'
        ? {
            weightDecay: head.weightDecay,
            weightDecayChosenBy: options.weightDecay === undefined ? 'inner cross-validation' : 'user',
            classBalanced: head.classBalanced,
          }
        : { distance: 'squared Euclidean to class means' }),
    };
    params.trainingSeconds = Number(((performance.now() - started) / 1000).toFixed(2));
    params.backend = `onnxruntime-node ${backbone.session.providers.join('+')} (backbone features), JavaScript float64 (head)`;
    params.augmentation = 'none (frozen features of the evaluation crop)';
    params.highBitDepth = project.highBitDepth();
    // A cancel that arrived during the last step still wins: nothing is saved.
    if (options.signal?.aborted)
      throw new FewShotError('CANCELLED', 'Training cancelled; no model was saved.');
    const result = project.db.transaction(() => {
      const modelId = project.models.insert({
        name: options.name ?? `${options.strategy} on ${backbone.id}`,
        backboneId: backbone.id,
        backboneSha256: backbone.sha256,
        strategy: options.strategy,
        params,
        seed,
        classes: data.classes,
        trainingSet: data.images.map((i, k) => ({
          id: i.id,
          sha256: i.sha256,
          class: data.classes[data.y[k] as number] as string,
        })),
        metrics: estimate,
        software: softwareVersions(),
        artefact: serializeHead(head),
        jobId,
      });
      project.audit.append('train', {
        modelId,
        strategy: options.strategy,
        backbone: backbone.id,
        images: data.x.length,
        seed,
      });
      project.jobs.finish(jobId, 'done', { modelId });
      return modelId;
    })();
    return {
      modelId: result,
      strategy: options.strategy,
      backbone: backbone.id,
      classes: data.classes,
      images: data.x.length,
      seed,
      params,
      estimate,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (e) {
    project.jobs.fail(jobId, e);
    throw e;
  }
}
