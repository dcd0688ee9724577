// Long jobs for the window: an id, an AbortController, progress throttled to ~10 Hz with an ETA, and a
// terminal event (done, failed or cancelled). Cancellation is cooperative: engines check the signal at
// batch boundaries.

import crypto from 'node:crypto';
import type { JobEvent, JobKind, JobProgress, JobResult } from '../../shared/contract.ts';
import { FewShotError, toErrorData } from '../../shared/errors.ts';

export interface JobContext {
  signal: AbortSignal;
  progress(
    phase: string,
    done: number,
    total: number,
    message?: string,
    metrics?: JobProgress['metrics'],
  ): void;
}

interface Running {
  kind: JobKind;
  controller: AbortController;
}

export class JobManager {
  private readonly running = new Map<string, Running>();
  constructor(private readonly emit: (e: JobEvent) => void) {}

  start(kind: JobKind, run: (ctx: JobContext) => Promise<JobResult>): string {
    const jobId = crypto.randomUUID();
    const controller = new AbortController();
    this.running.set(jobId, { kind, controller });
    const started = performance.now();
    let last = 0;
    let phaseStart = started;
    let phaseName = '';
    const ctx: JobContext = {
      signal: controller.signal,
      progress: (phase, done, total, message, metrics) => {
        const now = performance.now();
        if (phase !== phaseName) {
          phaseName = phase;
          phaseStart = now;
        } else if (now - last < 100 && done < total) return;
        last = now;
        const elapsed = (now - phaseStart) / 1000;
        const etaSeconds =
          done > 0 && total > done && elapsed > 0.5 ? ((total - done) * elapsed) / done : null;
        const progress: JobProgress = {
          phase,
          done,
          total,
          etaSeconds,
          ...(message ? { message } : {}),
          ...(metrics ? { metrics } : {}),
        };
        this.emit({ type: 'progress', jobId, kind, progress });
      },
    };
    // Start on the next turn so the caller can return the id before the first event.
    setImmediate(() => {
      run(ctx)
        .then((result) => this.emit({ type: 'done', jobId, kind, result }))
        .catch((e: unknown) => {
          const err = toErrorData(e);
          if (controller.signal.aborted || err.code === 'CANCELLED')
            this.emit({ type: 'cancelled', jobId, kind });
          else {
            if (!(e instanceof FewShotError)) console.error(`job ${kind} ${jobId} failed:`, e);
            this.emit({ type: 'failed', jobId, kind, error: err });
          }
        })
        .finally(() => this.running.delete(jobId));
    });
    return jobId;
  }

  cancel(jobId: string): boolean {
    const job = this.running.get(jobId);
    if (!job) return false;
    job.controller.abort();
    return true;
  }

  get active(): number {
    return this.running.size;
  }
}
