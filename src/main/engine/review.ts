// Everything the Review screen and the evaluation report show for a model: cross-validation with the
// model's own settings (groups kept whole), the learning curve, and ROC points for two classes.

import type { ReviewData } from '../../shared/results.ts';
import { FewShotError } from '../../shared/errors.ts';
import type { EvaluationResult, ModelRecord, Protocol } from '../../shared/results.ts';
import { DEFAULT_AUGMENT, type AugmentSpec } from '../../shared/augment.ts';
import { resolveBackbone } from './backbones/registry.ts';
import { isFinetuned, type FinetuneStrategy } from '../../shared/strategies.ts';
import type { Project } from '../store/project.ts';
import type { Backbone } from './backbones/backbone.ts';
import { loadDataset, withViews } from './classify/dataset.ts';
import type { TtaKind } from '../../shared/tta.ts';
import type { FitOptions } from './classify/heads.ts';
import type { Vec } from './classify/linalg.ts';
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
  /** The model's backbone, loaded; a fine-tuned model carries its own network and needs none. */
  backbone: Backbone | null,
  model: ModelRecord,
  options: {
    protocol?: Protocol;
    groupAware?: boolean;
    /** Also evaluate with test-time augmentation (frozen-feature models), to compare. */
    tta?: TtaKind;
    signal?: AbortSignal;
    onProgress?: (phase: string, done: number, total: number) => void;
  } = {},
): Promise<ReviewData> {
  if (isFinetuned(model)) {
    // A fine-tuned model is re-trained per split with its own settings; the curve would cost one
    // fine-tuning per point and episode, so it is left out.
    const { evaluateFinetune } = await import('./finetune/train-finetune.ts');
    const p = model.params;
    const evaluation = await evaluateFinetune(
      project,
      resolveBackbone(model.backboneId),
      options.protocol ?? { kind: 'holdout', testFraction: 0.2 },
      {
        strategy: model.strategy as FinetuneStrategy,
        ...(typeof p.batchNorm === 'string' && p.batchNorm.startsWith('statistics adapted')
          ? { adaptBatchNorm: true }
          : {}),
        seed: model.seed,
        ...(typeof p.epochs === 'number' ? { epochs: p.epochs } : {}),
        ...(typeof p.lrHead === 'number' ? { lrHead: p.lrHead } : {}),
        ...(typeof p.lrBackbone === 'number' ? { lrBackbone: p.lrBackbone } : {}),
        augment: (p.augment as AugmentSpec | undefined) ?? DEFAULT_AUGMENT,
        ...(options.groupAware !== undefined ? { groupAware: options.groupAware } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (e) => options.onProgress?.(e.phase, e.done, e.total),
      },
    );
    return { model, evaluation, curve: [], roc: rocFor(evaluation) };
  }
  if (!backbone) throw new FewShotError('INTERNAL', 'A head on frozen features needs its backbone loaded.');
  const data = await loadDataset(project, backbone, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (e) => options.onProgress?.('features', e.done, e.total),
  });
  const strategy = model.strategy as 'prototype' | 'linear';
  const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
  const fit = fitSettings(model);
  const settings = {
    strategy,
    protocol: options.protocol ?? estimateProtocol(counts),
    seed: model.seed,
    fit,
    ...(options.groupAware !== undefined ? { groupAware: options.groupAware } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const evaluation = evaluate(data, {
    ...settings,
    onProgress: (d, t) => options.onProgress?.('cross-validation', d, t),
  });
  let ttaEvaluation: EvaluationResult | undefined;
  if (options.tta && options.tta !== 'none') {
    // The same splits and heads, each test image scored over its views.
    const viewed = await withViews(project, backbone, data, options.tta, {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (d, t) => options.onProgress?.('test-time views', d, t),
    });
    ttaEvaluation = evaluate(viewed, {
      ...settings,
      tta: options.tta,
      onProgress: (d, t) => options.onProgress?.('cross-validation with views', d, t),
    });
  }
  options.onProgress?.('learning curve', 0, 1);
  const curve = learningCurve(data, {
    strategy,
    seed: model.seed,
    episodes: 30,
    fit,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { model, evaluation, ...(ttaEvaluation ? { ttaEvaluation } : {}), curve, roc: rocFor(evaluation) };
}

export function rocFor(evaluation: EvaluationResult): ReviewData['roc'] {
  return evaluation.classes.length === 2
    ? rocCurve(
        evaluation.predictions.map((pr) => pr.probabilities[1] ?? 0),
        evaluation.predictions.map((pr) => pr.truth === 1),
      ).map(({ fpr, tpr }) => ({ fpr, tpr }))
    : null;
}

/**
 * The temperature for a frozen-feature model's test-time augmentation, fitted honestly: the model's own
 * training images, cross-validated as its estimate was (groups whole), each held-out image's raw logits
 * in every view. Used by batch classification with views.
 */
export async function fitModelTta(
  project: Project,
  backbone: Backbone,
  model: ModelRecord,
  kind: TtaKind,
  options: { signal?: AbortSignal; onProgress?: (phase: string, done: number, total: number) => void } = {},
): Promise<{ temperature: number; from: string }> {
  const all = await loadDataset(project, backbone, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (e) => options.onProgress?.('features', e.done, e.total),
  });
  const trained = new Map(model.trainingSet.map((t) => [t.sha256, t.class]));
  const keep = all.images.map((img, i) => (trained.has(img.sha256) ? i : -1)).filter((i) => i >= 0);
  const classOf = (i: number) =>
    model.classes.indexOf(trained.get(all.images[i]?.sha256 as string) as string);
  const data = {
    ...all,
    x: keep.map((i) => all.x[i] as Vec),
    y: keep.map(classOf),
    classes: model.classes,
    groups: all.groups ? keep.map((i) => all.groups?.[i] ?? null) : null,
    ids: keep.map((i) => all.ids[i] as number),
    images: keep.map((i) => all.images[i] as (typeof all.images)[number]),
  };
  const counts = model.classes.map((_, c) => data.y.filter((y) => y === c).length);
  if (Math.min(...counts) < 2)
    throw new FewShotError(
      'INVALID_INPUT',
      'Test-time augmentation needs at least two training images per class still in the project to fit its temperature.',
    );
  const viewed = await withViews(project, backbone, data, kind, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (d, t) => options.onProgress?.('test-time views', d, t),
  });
  const protocol = estimateProtocol(counts);
  const ev = evaluate(viewed, {
    strategy: model.strategy as 'prototype' | 'linear',
    protocol,
    seed: model.seed,
    fit: fitSettings(model),
    tta: kind,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    temperature: ev.tta?.temperature ?? 1,
    from: `held-out logits of every view, ${protocol.kind === 'kfold' ? `${protocol.folds}-fold cross-validation` : 'leave-one-out'} over the model's ${data.x.length} training images`,
  };
}
