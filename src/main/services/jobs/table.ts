// Every kind of job and the use case that runs it: the one table a job worker dispatches on.

import { FewShotError } from '../../../shared/errors.ts';
import {
  isAppJobKind,
  type AppJobKind,
  type JobKind,
  type JobRequests,
  type JobResults,
  type ProjectJobKind,
} from '../../../shared/jobs.ts';
import type { Project } from '../../store/project.ts';
import { exportAudit } from '../audit.ts';
import { installBackbone } from '../backbone-install.ts';
import { classifyBatch } from '../batch.ts';
import { exportBundle } from '../bundles.ts';
import type { UseCaseContext } from '../context.ts';
import { checkDataset, computeProjectFeatures, importImages } from '../dataset.ts';
import { exportEmbeddings } from '../embeddings.ts';
import { curve, evaluateStrategy, review } from '../evaluation.ts';
import { report } from '../reports.ts';
import { suggestLabels } from '../suggest.ts';
import { estimateTraining, train } from '../training.ts';
import { tryImage } from '../try-image.ts';

export type JobFunction<K extends JobKind> = (
  project: Project,
  request: JobRequests[K],
  ctx: UseCaseContext,
) => Promise<JobResults[K]>;

/** A job of the app (no project open, no row): it gets its request and context only. */
export type AppJobFunction<K extends AppJobKind> = (
  request: JobRequests[K],
  ctx: UseCaseContext,
) => Promise<JobResults[K]>;

export const JOBS: { [K in ProjectJobKind]: JobFunction<K> } = {
  import: importImages,
  features: computeProjectFeatures,
  checks: checkDataset,
  train,
  evaluate: evaluateStrategy,
  curve,
  review,
  batch: classifyBatch,
  report,
  export: (p, r, ctx) => exportBundle(p, r, ctx),
  'audit-export': exportAudit,
  'train-estimate': estimateTraining,
  embeddings: exportEmbeddings,
  try: tryImage,
  suggest: suggestLabels,
};

export const APP_JOBS: { [K in AppJobKind]: AppJobFunction<K> } = {
  'backbone-add': installBackbone,
};

export function runJobKind<K extends JobKind>(
  kind: K,
  project: Project | null,
  request: JobRequests[K],
  ctx: UseCaseContext,
): Promise<JobResults[K]> {
  const k: JobKind = kind;
  if (isAppJobKind(k)) {
    const run = APP_JOBS[k] as unknown as (r: JobRequests[K], c: UseCaseContext) => Promise<JobResults[K]>;
    return run(request, ctx);
  }
  if (!project) throw new FewShotError('INTERNAL', `A ${k} job needs an open project.`);
  return (JOBS[k] as unknown as JobFunction<K>)(project, request, ctx);
}
