// Every kind of job and the use case that runs it: the one table a job worker dispatches on.

import type { JobKind, JobRequests, JobResults } from '../../../shared/jobs.ts';
import type { Project } from '../../store/project.ts';
import { exportAudit } from '../audit.ts';
import { classifyBatch } from '../batch.ts';
import { exportBundle } from '../bundles.ts';
import type { UseCaseContext } from '../context.ts';
import { checkDataset, computeProjectFeatures, importImages } from '../dataset.ts';
import { curve, evaluateStrategy, review } from '../evaluation.ts';
import { report } from '../reports.ts';
import { estimateTraining, train } from '../training.ts';

export type JobFunction<K extends JobKind> = (
  project: Project,
  request: JobRequests[K],
  ctx: UseCaseContext,
) => Promise<JobResults[K]>;

export const JOBS: { [K in JobKind]: JobFunction<K> } = {
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
};

export function runJobKind<K extends JobKind>(
  kind: K,
  project: Project,
  request: JobRequests[K],
  ctx: UseCaseContext,
): Promise<JobResults[K]> {
  return (JOBS[kind] as JobFunction<K>)(project, request, ctx);
}
