// Training, review, batch classification, reports and export: each checks what it can at once (a wrong
// id or folder is an answer, not a failed job), then runs as a job.

import { batchResults, batchRuns, checkBatchRequest, requireBatchRun } from '../../services/batch.ts';
import { storedReview } from '../../services/evaluation.ts';
import { deleteModel } from '../../services/model-delete.ts';
import { requireModel } from '../../services/resources.ts';
import { tryRequest } from '../../services/try-image.ts';
import { checkTrainRequest, recommendation, trainedModels } from '../../services/training.ts';
import type { HandlerMap, HostContext } from './types.ts';

type ModelChannel =
  | 'train.recommend'
  | 'train.start'
  | 'train.models'
  | 'train.estimate'
  | 'review.get'
  | 'review.start'
  | 'batch.start'
  | 'batch.runs'
  | 'batch.results'
  | 'report.export'
  | 'model.export'
  | 'model.delete'
  | 'model.try';

export function modelHandlers(ctx: HostContext): HandlerMap<ModelChannel> {
  return {
    'train.recommend': async () => recommendation(ctx.project()),
    'train.start': async (req) => {
      const p = ctx.project();
      checkTrainRequest(p, req);
      return { jobId: ctx.jobs.start(p, 'train', req) };
    },
    'train.models': async () => trainedModels(ctx.project()),
    'train.estimate': async (req) => {
      const p = ctx.project();
      checkTrainRequest(p, req);
      return { jobId: ctx.jobs.start(p, 'train-estimate', req) };
    },
    'review.get': async ({ modelId, protocol, tta }) => ({
      review: storedReview(ctx.project(), modelId, protocol, true, tta),
    }),
    'review.start': async (req) => {
      const p = ctx.project();
      requireModel(p, req.modelId);
      return { jobId: ctx.jobs.start(p, 'review', req) };
    },
    'batch.start': async (req) => {
      const p = ctx.project();
      checkBatchRequest(p, req);
      return { jobId: ctx.jobs.start(p, 'batch', req) };
    },
    'batch.runs': async () => ({ runs: batchRuns(ctx.project()) }),
    'batch.results': async ({ runId, filter, offset, limit }) =>
      batchResults(ctx.project(), runId, filter, offset, limit),
    'report.export': async (req) => {
      const p = ctx.project();
      if (req.kind === 'batch') requireBatchRun(p, req.runId);
      else requireModel(p, req.modelId);
      return { jobId: ctx.jobs.start(p, 'report', req) };
    },
    'model.export': async (req) => {
      const p = ctx.project();
      requireModel(p, req.modelId);
      return { jobId: ctx.jobs.start(p, 'export', req) };
    },
    'model.delete': async ({ modelId }) =>
      deleteModel(ctx.project(), modelId, (id) => ctx.jobs.usesModel(id)),
    'model.try': async (input) => {
      const p = ctx.project();
      return { jobId: ctx.jobs.start(p, 'try', tryRequest(p, input)) };
    },
  };
}
