// What every use case receives besides its request: a cancel signal, a progress sink, and — when a job
// worker runs it — the id of the job row the request created. `runJob` owns that row's life: started,
// done, failed, or cancelled with an audit entry saying so.

import type { JobKind, JobProgress, JobResults } from '../../shared/jobs.ts';
import { FewShotError, toErrorData } from '../../shared/errors.ts';
import type { Project } from '../store/project.ts';

export interface ProgressUpdate {
  phase: string;
  done: number;
  total: number;
  message?: string;
  metrics?: JobProgress['metrics'];
  /** The whole run's work in units (several phases together), when the use case can say: the ETA's basis. */
  overall?: { done: number; total: number };
}

export interface UseCaseContext {
  signal?: AbortSignal;
  progress?: (p: ProgressUpdate) => void;
  /** The row created when the job was requested (the app); absent, the use case creates one (the CLI). */
  jobId?: string;
}

/** The engine's optional signal and progress options from a context, without undefined values. */
export function signalOf(ctx: UseCaseContext): { signal?: AbortSignal } {
  return ctx.signal ? { signal: ctx.signal } : {};
}

export function throwIfCancelled(ctx: UseCaseContext, what = 'The job'): void {
  if (ctx.signal?.aborted) throw new FewShotError('CANCELLED', `${what} was cancelled.`);
}

/** What the job's row keeps of a result: small, and never the predictions. */
function rowResult(kind: JobKind, r: unknown): unknown {
  const v = r as Record<string, unknown>;
  switch (kind) {
    case 'import':
      return { ...v, rejected: Array.isArray(v.rejected) ? v.rejected.length : v.rejected };
    case 'train':
      return { modelId: v.modelId };
    case 'review':
    case 'evaluate':
    case 'curve':
    case 'checks':
      return null;
    case 'suggest': {
      const { suggestions, failed, ...rest } = v;
      return {
        ...rest,
        suggestions: (suggestions as unknown[]).length,
        failed: (failed as unknown[]).length,
      };
    }
    case 'features': {
      const { errors: _e, ...rest } = v;
      return rest;
    }
    default:
      return r;
  }
}

/**
 * Runs `fn` as the job `kind` of `project`: adopts the row made at the request (or creates one), and ends
 * it. A cancellation — the signal, or a CANCELLED error — ends the row as cancelled and appends
 * `job.cancelled` to the audit trail; the use case itself saves nothing once cancelled.
 */
export async function runJob<K extends JobKind, R extends JobResults[K]>(
  project: Project,
  kind: K,
  params: unknown,
  ctx: UseCaseContext,
  fn: (jobId: string) => Promise<R>,
): Promise<R> {
  let jobId: string;
  if (ctx.jobId) {
    jobId = ctx.jobId;
    project.jobs.start(jobId);
  } else jobId = project.jobs.create(kind, params);
  try {
    const result = await fn(jobId);
    project.jobs.finish(jobId, 'done', rowResult(kind, result));
    return result;
  } catch (e) {
    const err = toErrorData(e);
    if (ctx.signal?.aborted || err.code === 'CANCELLED') {
      recordCancelled(project, jobId, kind);
      throw e instanceof FewShotError && e.code === 'CANCELLED'
        ? e
        : new FewShotError('CANCELLED', 'Cancelled.', { cause: e });
    }
    project.jobs.fail(jobId, e);
    throw e;
  }
}

/** The row and the audit trail both say the job was cancelled (also used when a worker is stopped hard). */
export function recordCancelled(project: Project, jobId: string, kind: JobKind): void {
  try {
    project.db.transaction(() => {
      // A job that ended another way (done just before the cancel) keeps that ending.
      const status = project.jobs.get(jobId)?.status;
      if (status === 'done' || status === 'failed') return;
      project.jobs.finish(jobId, 'cancelled', null, {
        code: 'CANCELLED',
        message: 'Cancelled; nothing was saved.',
      });
      project.audit.append('job.cancelled', { jobId, kind });
    })();
  } catch {
    // A full disk: the next open marks the job interrupted.
  }
}
