// Training a model — a head on frozen features or a fine-tuned network — and what the Train screen
// recommends for the data at hand.

import { DEFAULT_AUGMENT } from '../../shared/augment.ts';
import type { Recommendation } from '../../shared/contract.ts';
import { FewShotError } from '../../shared/errors.ts';
import {
  isFinetuneRequest,
  type FinetuneSettings,
  type FrozenTrainRequest,
  type Request,
  type TrainRequest,
} from '../../shared/requests.ts';
import type { ModelRecord, TrainResult } from '../../shared/results.ts';
import type { FinetuneStrategy } from '../../shared/strategies.ts';
import type { TrainMeasurement } from '../../shared/train-estimate.ts';
import { listBackbones, resolveBackbone } from '../engine/backbones/registry.ts';
import { projectFingerprint } from '../engine/data-fingerprint.ts';
import type { FinetuneRunOptions } from '../engine/finetune/train-finetune.ts';
import { recommend } from '../engine/recommend.ts';
import { trainModel } from '../engine/train.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { withBackbone } from './resources.ts';
import { storeModelValidation } from './stored-reviews.ts';

/** TensorFlow.js loads only for work that fine-tunes. */
export function finetuneEngine(): Promise<typeof import('../engine/finetune/train-finetune.ts')> {
  return import('../engine/finetune/train-finetune.ts');
}

/** Checked when training is asked for: the backbone is installed and two classes have images. */
export function checkTrainRequest(project: Project, req: { backbone: string }): void {
  resolveBackbone(req.backbone);
  const classes = project.images.classes().filter((c) => c.images - c.excluded > 0);
  if (classes.length < 2)
    throw new FewShotError('INVALID_INPUT', 'The project needs labelled images in at least two classes.');
}

/** One step and one batch of the frozen layers measured, for the Train screen's duration estimate. */
export function estimateTraining(
  project: Project,
  req: Request<'train-estimate'>,
  ctx: UseCaseContext = {},
): Promise<TrainMeasurement> {
  return runJob(project, 'train-estimate', req, ctx, async () => {
    const { measureFinetune } = await import('../engine/finetune/estimate.ts');
    ctx.progress?.({ phase: 'measuring a training step', done: 0, total: 1 });
    return measureFinetune(project, resolveBackbone(req.backbone), {
      strategy: req.strategy,
      ...(req.device ? { device: req.device } : {}),
      ...(req.adaptBatchNorm ? { adaptBatchNorm: true } : {}),
      ...signalOf(ctx),
    });
  });
}

/** The fine-tuning engine's options from the request's settings (the head's rate; the backbone's ÷10). */
export function finetuneOptions(
  strategy: FinetuneStrategy,
  seed: number,
  s: FinetuneSettings,
  ctx: UseCaseContext,
): FinetuneRunOptions {
  const lr = s.lr ?? 1e-3;
  return {
    strategy,
    seed,
    epochs: s.epochs ?? 10,
    lrHead: lr,
    lrBackbone: s.lrBackbone ?? lr / 10,
    augment: s.augment ?? DEFAULT_AUGMENT,
    ...(s.adaptBatchNorm ? { adaptBatchNorm: true } : {}),
    ...(s.device ? { device: s.device } : {}),
    ...signalOf(ctx),
    onProgress: (e) =>
      ctx.progress?.({
        phase: e.phase,
        done: e.done,
        total: e.total,
        ...(e.message ? { message: e.message } : {}),
        ...(e.loss !== undefined ? { metrics: { loss: e.loss } } : {}),
        ...(e.epoch
          ? {
              metrics: {
                run: e.epoch.run,
                epoch: e.epoch.epoch,
                epochLoss: e.epoch.loss,
                validationAccuracy: e.epoch.validationAccuracy,
              },
            }
          : {}),
        ...(e.overall ? { overall: e.overall } : {}),
      }),
  };
}

export function train(project: Project, req: TrainRequest, ctx: UseCaseContext = {}): Promise<TrainResult> {
  return runJob(project, 'train', req, ctx, async (jobId) => {
    if (isFinetuneRequest(req)) {
      const { trainFinetuneModel } = await finetuneEngine();
      const dataFingerprint = projectFingerprint(project); // the data this run reads
      const { validation, ...result } = await trainFinetuneModel(project, resolveBackbone(req.backbone), {
        ...finetuneOptions(req.strategy, req.seed, req, ctx),
        jobId,
        ...(req.name ? { name: req.name } : {}),
        ...(req.pace ? { pace: req.pace } : {}),
      });
      if (validation) storeModelValidation(project, result.modelId, validation, jobId, dataFingerprint);
      return result;
    }
    const frozen: FrozenTrainRequest = req;
    return withBackbone(frozen.backbone, (b) =>
      trainModel(project, b, {
        strategy: frozen.strategy,
        seed: frozen.seed,
        jobId,
        ...(frozen.name ? { name: frozen.name } : {}),
        ...(frozen.classBalanced !== undefined ? { classBalanced: frozen.classBalanced } : {}),
        ...(frozen.weightDecay !== undefined ? { weightDecay: frozen.weightDecay } : {}),
        ...signalOf(ctx),
        onProgress: (e) =>
          ctx.progress?.({
            phase: e.phase,
            done: e.done,
            total: e.total,
            ...(e.loss !== undefined ? { metrics: { loss: e.loss } } : {}),
          }),
      }),
    );
  });
}

export function recommendation(project: Project): Recommendation {
  return recommend(
    project.images.classes().map((c) => c.images - c.excluded),
    listBackbones(),
  );
}

/** The project's trained models, newest first. */
export function trainedModels(project: Project): { models: ModelRecord[] } {
  return { models: project.models.list() };
}
