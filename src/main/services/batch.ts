// Batch classification of a folder to a CSV (and sorted copies), and the runs kept in the project: their
// counts, their results page by page, and a report at any later time.

import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { BatchRunView, ClassifySummary, PredictionRow } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import { ttaOfRun } from '../../shared/tta.ts';
import { Backbone } from '../engine/backbones/backbone.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import { classifyFolder } from '../engine/batch/classify-folder.ts';
import { loadModelRunner } from '../engine/model-runner.ts';
import { fitModelTta } from '../engine/review.ts';
import type { BatchRun } from '../store/batch-repo.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { requireModel } from './resources.ts';

/** Checked when the batch is asked for: the model exists and the folder is there. */
export function checkBatchRequest(project: Project, req: Request<'batch'>): void {
  requireModel(project, req.modelId);
  if (!fs.statSync(req.folder, { throwIfNoEntry: false })?.isDirectory())
    throw new FewShotError('NOT_FOUND', `No folder at ${req.folder}.`);
}

export function classifyBatch(
  project: Project,
  req: Request<'batch'>,
  ctx: UseCaseContext = {},
): Promise<ClassifySummary> {
  const model = requireModel(project, req.modelId);
  return runJob(project, 'batch', { ...req, modelId: model.id }, ctx, async (jobId) => {
    const device = req.device ? { device: req.device } : {};
    const lent = isFinetuned(model)
      ? undefined
      : await Backbone.load(resolveBackbone(model.backboneId), device);
    try {
      const kind = req.tta ?? 'none';
      let tta: { kind: typeof kind; temperature: number | null; temperatureFrom: string } | undefined;
      if (kind !== 'none') {
        // The views' own temperature (frozen-feature models); a fine-tuned graph keeps its own.
        const fitted = lent
          ? await fitModelTta(project, lent, model, kind, {
              ...signalOf(ctx),
              onProgress: (phase, done, total) =>
                ctx.progress?.({ phase: `calibrating the views: ${phase}`, done, total }),
            })
          : null;
        tta = fitted
          ? { kind, temperature: fitted.temperature, temperatureFrom: fitted.from }
          : {
              kind,
              temperature: null,
              temperatureFrom:
                "the fine-tuned model's own temperature (fitted on single-view hold-out predictions)",
            };
      }
      const runner = await loadModelRunner(project, model, lent, device);
      try {
        return await classifyFolder(project, runner, model, req.folder, {
          ...(tta ? { tta } : {}),
          jobId,
          outCsv: req.out,
          ...(req.sortInto ? { sortInto: req.sortInto } : {}),
          link: req.link ?? false,
          minConfidence: req.minConfidence,
          batchSize: req.batchSize ?? 16,
          ...signalOf(ctx),
          onProgress: (e) =>
            ctx.progress?.({
              phase: 'classifying',
              done: e.processed,
              total: e.processed,
              message: `${e.errors} errors`,
            }),
        });
      } finally {
        await runner.release();
      }
    } finally {
      await lent?.release();
    }
  });
}

function runView(
  r: BatchRun & { status: string | null; counts: ReturnType<Project['batches']['summary']> },
): BatchRunView {
  const perClass: Record<string, number> = {};
  let ok = 0;
  let uncertain = 0;
  let errors = 0;
  for (const c of r.counts) {
    if (c.status === 'error') errors += c.n;
    else {
      if (c.status === 'ok') ok += c.n;
      else uncertain += c.n;
      perClass[c.predicted as string] = (perClass[c.predicted as string] ?? 0) + c.n;
    }
  }
  const status = (
    ['queued', 'running', 'done', 'failed', 'cancelled'].includes(r.status ?? '') ? r.status : 'unknown'
  ) as BatchRunView['status'];
  return {
    id: r.id,
    modelId: r.modelId,
    folder: path.basename(r.root),
    createdAt: r.createdAt,
    status,
    files: ok + uncertain + errors,
    ok,
    uncertain,
    errors,
    perClass,
    csv: typeof r.params.out === 'string' ? r.params.out : null,
    minConfidence: typeof r.params.minConfidence === 'number' ? r.params.minConfidence : null,
    tta: ttaOfRun(r.params),
  };
}

export function batchRuns(project: Project): BatchRunView[] {
  return project.batches.list().map(runView);
}

export function requireBatchRun(project: Project, idOrPrefix: string): BatchRun {
  const run = project.batches.get(idOrPrefix) ?? project.batches.find(idOrPrefix);
  if (!run) throw new FewShotError('NOT_FOUND', `No batch run "${idOrPrefix}" in this project.`);
  return run;
}

export function batchResults(
  project: Project,
  runId: string,
  filter: 'all' | 'uncertain' | 'error' | { predicted: string },
  offset: number,
  limit: number,
): { total: number; rows: PredictionRow[] } {
  return project.batches.page(requireBatchRun(project, runId).id, filter, offset, limit);
}
