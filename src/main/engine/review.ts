// Everything the Review screen and the evaluation report show for a model: cross-validation with the
// model's own settings (groups kept whole), the learning curve, and ROC points for two classes.

import type { ReviewData } from '../../shared/contract.ts';
import type { ModelRecord, Protocol } from '../../shared/results.ts';
import type { Project } from '../store/project.ts';
import type { Backbone } from './backbones/backbone.ts';
import { loadDataset } from './classify/dataset.ts';
import type { FitOptions } from './classify/heads.ts';
import { evaluate, learningCurve } from './evaluate/evaluate.ts';
import { rocCurve } from './evaluate/metrics.ts';
import { estimateProtocol } from './train.ts';

/** The fit settings a model was trained with, to evaluate the same configuration. */
export function fitSettings(model: ModelRecord): Omit<FitOptions, 'seed' | 'validation'> {
  return {
    ...(typeof model.params.weightDecay === 'number' && model.params.weightDecayChosenBy === 'user'
      ? { weightDecay: model.params.weightDecay }
      : {}),
    ...(model.params.classBalanced === true ? { classBalanced: true } : {}),
  };
}

export async function computeReview(
  project: Project,
  backbone: Backbone,
  model: ModelRecord,
  options: {
    protocol?: Protocol;
    groupAware?: boolean;
    signal?: AbortSignal;
    onProgress?: (phase: string, done: number, total: number) => void;
  } = {},
): Promise<ReviewData> {
  const data = await loadDataset(project, backbone, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (e) => options.onProgress?.('features', e.done, e.total),
  });
  const strategy = model.strategy as 'prototype' | 'linear';
  const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
  const fit = fitSettings(model);
  const evaluation = evaluate(data, {
    strategy,
    protocol: options.protocol ?? estimateProtocol(counts),
    seed: model.seed,
    fit,
    ...(options.groupAware !== undefined ? { groupAware: options.groupAware } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (d, t) => options.onProgress?.('cross-validation', d, t),
  });
  options.onProgress?.('learning curve', 0, 1);
  const curve = learningCurve(data, {
    strategy,
    seed: model.seed,
    episodes: 30,
    fit,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const roc =
    data.classes.length === 2
      ? rocCurve(
          evaluation.predictions.map((pr) => pr.probabilities[1] ?? 0),
          evaluation.predictions.map((pr) => pr.truth === 1),
        ).map(({ fpr, tpr }) => ({ fpr, tpr }))
      : null;
  return { model, evaluation, curve, roc };
}
