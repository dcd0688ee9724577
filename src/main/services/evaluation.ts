// Evaluating a strategy on the project's data (any protocol, groups kept whole), the learning curve, and
// the review of a trained model — stored, so Review and the report reuse one evaluation until the data
// or the protocol changes.

import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { CurveResult, EvaluationResult, ReviewData } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import { loadDataset, withViews } from '../engine/classify/dataset.ts';
import { evaluate, learningCurve } from '../engine/evaluate/evaluate.ts';
import { computeReview } from '../engine/review.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, throwIfCancelled, type UseCaseContext } from './context.ts';
import { requireModel, withBackbone } from './resources.ts';
import { reviewKey, type StoredReview } from './stored-reviews.ts';
import { finetuneEngine, finetuneOptions } from './training.ts';

export { storedReview } from './stored-reviews.ts';

export function evaluateStrategy(
  project: Project,
  req: Request<'evaluate'>,
  ctx: UseCaseContext = {},
): Promise<EvaluationResult> {
  return runJob(project, 'evaluate', req, ctx, async () => {
    const groupAware = req.groupAware ?? true;
    if (isFinetuned(req.strategy)) {
      if (req.tta && req.tta !== 'none')
        throw new FewShotError(
          'INVALID_INPUT',
          'Test-time augmentation is evaluated for frozen-feature strategies (prototype, linear); a fine-tuned model uses it in batch classification.',
        );
      const { evaluateFinetune } = await finetuneEngine();
      return evaluateFinetune(project, resolveBackbone(req.backbone), req.protocol, {
        ...finetuneOptions(req.strategy, req.seed, req.finetune ?? {}, ctx),
        groupAware,
      });
    }
    const strategy = req.strategy;
    return withBackbone(req.backbone, async (b) => {
      const plain = await loadDataset(project, b, {
        ...signalOf(ctx),
        onProgress: (e) => ctx.progress?.({ phase: 'features', done: e.done, total: e.total }),
      });
      const tta = req.tta ?? 'none';
      const data =
        tta === 'none'
          ? plain
          : await withViews(project, b, plain, tta, {
              ...signalOf(ctx),
              onProgress: (done, total) => ctx.progress?.({ phase: 'test-time views', done, total }),
            });
      return evaluate(data, {
        strategy,
        protocol: req.protocol,
        seed: req.seed,
        groupAware,
        ...(tta !== 'none' ? { tta } : {}),
        ...signalOf(ctx),
        onProgress: (done, total) => ctx.progress?.({ phase: 'evaluating', done, total }),
      });
    });
  });
}

export function curve(
  project: Project,
  req: Request<'curve'>,
  ctx: UseCaseContext = {},
): Promise<CurveResult> {
  return runJob(project, 'curve', req, ctx, () =>
    withBackbone(req.backbone, async (b) => {
      const data = await loadDataset(project, b, {
        ...signalOf(ctx),
        onProgress: (e) => ctx.progress?.({ phase: 'features', done: e.done, total: e.total }),
      });
      ctx.progress?.({ phase: 'learning curve', done: 0, total: 1 });
      const points = learningCurve(data, {
        strategy: req.strategy,
        seed: req.seed,
        episodes: req.episodes ?? 50,
        groupAware: req.groupAware ?? true,
        ...signalOf(ctx),
      });
      return { strategy: req.strategy, backbone: b.id, points };
    }),
  );
}

/** Review figures for a model: the stored evaluation when the data has not changed, else a new one. */
export async function reviewFor(
  project: Project,
  req: Request<'review'>,
  ctx: UseCaseContext,
  jobId: string | null,
): Promise<ReviewData> {
  const model = requireModel(project, req.modelId);
  const key = reviewKey(project, model, req.protocol, req.groupAware ?? true, req.tta ?? 'none');
  const hit = project.evaluations.get<StoredReview>(key);
  if (hit) return { model, ...hit.result };
  const review = isFinetuned(model)
    ? await computeReview(project, null, model, reviewOptions(req, ctx))
    : await withBackbone(model.backboneId, (b) => computeReview(project, b, model, reviewOptions(req, ctx)));
  throwIfCancelled(ctx, 'The evaluation');
  const { model: _m, ...stored } = review;
  project.evaluations.put(key, stored, jobId);
  return review;
}

function reviewOptions(req: Request<'review'>, ctx: UseCaseContext): Parameters<typeof computeReview>[3] {
  return {
    ...(req.protocol ? { protocol: req.protocol } : {}),
    ...(req.groupAware !== undefined ? { groupAware: req.groupAware } : {}),
    ...(req.tta ? { tta: req.tta } : {}),
    ...signalOf(ctx),
    onProgress: (phase, done, total) => ctx.progress?.({ phase, done, total }),
  };
}

export function review(
  project: Project,
  req: Request<'review'>,
  ctx: UseCaseContext = {},
): Promise<ReviewData> {
  return runJob(project, 'review', req, ctx, (jobId) => reviewFor(project, req, ctx, jobId));
}
