// The PDF reports: a model's evaluation (the stored review when the data has not changed) and a batch
// run's. Written atomically, audited the same way whoever asks.

import type { Request } from '../../shared/requests.ts';
import type { ReportResult } from '../../shared/results.ts';
import { writeFileAtomic } from '../engine/atomic-file.ts';
import { loadDataset } from '../engine/classify/dataset.ts';
import { datasetWarnings } from '../engine/dataset-warnings.ts';
import { renderBatchReport } from '../engine/report/batch-report.ts';
import { renderEvaluationReport } from '../engine/report/evaluation-report.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, throwIfCancelled, type UseCaseContext } from './context.ts';
import { reviewFor } from './evaluation.ts';
import { requireBatchRun } from './batch.ts';
import { requireModel, withBackbone } from './resources.ts';

export function report(
  project: Project,
  req: Request<'report'>,
  ctx: UseCaseContext = {},
): Promise<ReportResult> {
  return runJob(project, 'report', req, ctx, async (jobId) => {
    let pdf: Buffer;
    let details: Record<string, unknown>;
    if (req.kind === 'batch') {
      const run = requireBatchRun(project, req.runId);
      pdf = await renderBatchReport(project, run.id);
      details = { kind: 'batch', runId: run.id };
    } else {
      const model = requireModel(project, req.modelId);
      const review = await reviewFor(
        project,
        {
          modelId: model.id,
          ...(req.protocol ? { protocol: req.protocol } : {}),
          ...(req.groupAware !== undefined ? { groupAware: req.groupAware } : {}),
          ...(req.tta ? { tta: req.tta } : {}),
        },
        ctx,
        jobId,
      );
      ctx.progress?.({ phase: 'checks', done: 0, total: 1 });
      const warnings = await withBackbone(model.backboneId, async (b) =>
        datasetWarnings(project, await loadDataset(project, b, signalOf(ctx))),
      );
      ctx.progress?.({ phase: 'writing', done: 0, total: 1 });
      pdf = await renderEvaluationReport({ project, ...review, warnings });
      details = { kind: 'evaluation', modelId: model.id };
    }
    throwIfCancelled(ctx, 'The report');
    const r = writeFileAtomic(req.out, pdf);
    project.db.transaction(() => project.audit.append('report', { ...details, bytes: r.bytes }))();
    return r;
  });
}
