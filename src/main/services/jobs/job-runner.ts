// Starts jobs in worker threads for the app: one row per job from the request on, progress throttled to
// ~10 Hz with an ETA, cooperative cancel at the next step (a shared flag the worker reads), then after a
// grace period a hard stop. What the window shows of running jobs comes from here, so a reloaded window
// re-attaches to them. Jobs of the app itself (adding a backbone) need no project: they have no row and
// are listed while they run.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type {
  AppJobKind,
  EpochPoint,
  JobEvent,
  JobKind,
  JobProgress,
  JobRequests,
  JobSummary,
  ProjectJobKind,
} from '../../../shared/jobs.ts';
import { FewShotError, type ErrorData } from '../../../shared/errors.ts';
import type { Project } from '../../store/project.ts';
import { recordCancelled, type ProgressUpdate } from '../context.ts';
import type { FromWorker, ToWorker, WorkerInput } from './messages.ts';

/** The worker beside this module: TypeScript sources in development, the bundle when built. */
export function defaultJobWorker(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), here.endsWith('.ts') ? 'job-worker.ts' : 'job-worker.js');
}

export interface JobRunnerOptions {
  emit: (e: JobEvent) => void;
  workerScript?: string;
  /** How long a cancelled job may take to stop by itself before its worker is stopped (default 15 s). */
  graceMs?: number;
}

interface Running {
  id: string;
  kind: JobKind;
  /** Null for a job of the app (adding a backbone), which has no row. */
  project: Project | null;
  request: unknown;
  worker: Worker;
  flag: Int32Array;
  createdAt: string;
  progress: JobProgress | null;
  losses: number[];
  epochs: EpochPoint[];
  phase: { name: string; started: number };
  /** When the first whole-run progress arrived (the ETA's clock when the use case reports one). */
  overallStarted: number | null;
  lastEmit: number;
  cancelRequested: boolean;
  ended: boolean;
  hardStop: NodeJS.Timeout | null;
}

const MAX_LOSSES = 5000;

/** A worker for a TypeScript entry runs through tsx, registered inside the worker before the entry loads. */
function spawn(script: string, workerData: WorkerInput): Worker {
  if (!script.endsWith('.ts')) return new Worker(script, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL(`file://${script}`).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(code, { eval: true, workerData });
}

function modelOf(v: unknown): string | null {
  const id = (v as { modelId?: unknown } | null)?.modelId;
  return typeof id === 'string' ? id : null;
}

export class JobRunner {
  private readonly running = new Map<string, Running>();
  private readonly script: string;
  private readonly graceMs: number;

  constructor(private readonly options: JobRunnerOptions) {
    this.script = options.workerScript ?? defaultJobWorker();
    this.graceMs = options.graceMs ?? 15_000;
    if (!fs.existsSync(this.script)) throw new FewShotError('INTERNAL', `No job worker at ${this.script}.`);
  }

  /** Creates the job's row (queued) and starts its worker; returns the job's id at once. */
  start<K extends ProjectJobKind>(project: Project, kind: K, request: JobRequests[K]): string {
    return this.launch(project, project.jobs.create(kind, request, { status: 'queued' }), kind, request);
  }

  /** Starts a job of the app, which needs no project (adding a backbone); it is listed while it runs. */
  startForApp<K extends AppJobKind>(kind: K, request: JobRequests[K]): string {
    return this.launch(null, crypto.randomUUID(), kind, request);
  }

  private launch(project: Project | null, jobId: string, kind: JobKind, request: unknown): string {
    const cancel = new SharedArrayBuffer(4);
    const worker = spawn(this.script, { file: project?.file ?? null, jobId, kind, request, cancel });
    const job: Running = {
      id: jobId,
      kind,
      project,
      request,
      worker,
      flag: new Int32Array(cancel),
      createdAt: new Date().toISOString(),
      progress: null,
      losses: [],
      epochs: [],
      phase: { name: '', started: performance.now() },
      overallStarted: null,
      lastEmit: 0,
      cancelRequested: false,
      ended: false,
      hardStop: null,
    };
    this.running.set(jobId, job);
    worker.on('message', (m: FromWorker) => this.onMessage(job, m));
    worker.on('error', (e) =>
      this.end(job, {
        type: 'failed',
        error: { code: 'INTERNAL', message: `The job stopped: ${e.message}` },
      }),
    );
    worker.on('exit', (code) => {
      if (job.hardStop) clearTimeout(job.hardStop);
      if (!job.ended)
        this.end(
          job,
          job.cancelRequested
            ? { type: 'cancelled' }
            : {
                type: 'failed',
                error: {
                  code: 'INTERNAL',
                  message: `The job's worker stopped unexpectedly (exit code ${code}).`,
                },
              },
        );
      this.running.delete(jobId);
    });
    return jobId;
  }

  /** Asks a running job to stop at its next step; after the grace period its worker is stopped. */
  cancel(jobId: string): boolean {
    const job = this.running.get(jobId);
    if (!job || job.ended) return false;
    if (!job.cancelRequested) {
      job.cancelRequested = true;
      Atomics.store(job.flag, 0, 1);
      job.worker.postMessage({ type: 'cancel' } satisfies ToWorker);
      job.hardStop = setTimeout(() => void job.worker.terminate(), this.graceMs);
      job.hardStop.unref();
    }
    return true;
  }

  /** Running jobs of a project (a job of the app does not keep a project from being switched). */
  get active(): number {
    return [...this.running.values()].filter((j) => !j.ended && j.project).length;
  }

  /**
   * Running jobs of the app, then the project's recent jobs from its rows (running ones with their
   * latest progress).
   */
  list(project: Project | null, limit = 50): JobSummary[] {
    const live = new Map([...this.running.values()].filter((j) => !j.ended).map((j) => [j.id, j]));
    const ofApp = [...live.values()]
      .filter((j) => !j.project)
      .map((j): JobSummary => ({
        id: j.id,
        kind: j.kind,
        status: 'running',
        createdAt: j.createdAt,
        updatedAt: new Date().toISOString(),
        progress: j.progress,
        losses: [],
        epochs: [],
        error: null,
        modelId: null,
        request: j.request && typeof j.request === 'object' ? (j.request as Record<string, unknown>) : null,
      }));
    if (!project) return ofApp;
    return [...ofApp, ...this.listRows(project, live, limit)];
  }

  private listRows(project: Project, live: Map<string, Running>, limit: number): JobSummary[] {
    return project.jobs.list(limit).map((r) => {
      const j = live.get(r.id);
      return {
        id: r.id,
        kind: r.kind,
        status: j ? (r.status === 'queued' ? 'queued' : 'running') : r.status,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
        progress: j?.progress ?? null,
        losses: j ? [...j.losses] : [],
        epochs: j ? [...j.epochs] : [],
        error: r.error,
        modelId: modelOf(r.params) ?? modelOf(r.result),
        request: r.params && typeof r.params === 'object' ? (r.params as Record<string, unknown>) : null,
      };
    });
  }

  /** Whether a running job works on this model (a review, a batch, an export…): it cannot be deleted then. */
  usesModel(modelId: string): boolean {
    return [...this.running.values()].some((j) => !j.ended && modelOf(j.request) === modelId);
  }

  /** Stops every worker (the app is closing); their rows say cancelled. */
  async close(): Promise<void> {
    const jobs = [...this.running.values()];
    for (const j of jobs) j.cancelRequested = true;
    await Promise.all(jobs.map((j) => j.worker.terminate()));
  }

  private onMessage(job: Running, m: FromWorker): void {
    if (job.ended) return;
    if (m.type === 'progress') this.onProgress(job, m.progress);
    else this.end(job, m);
  }

  private onProgress(job: Running, p: ProgressUpdate): void {
    const now = performance.now();
    if (p.metrics?.loss !== undefined) {
      job.losses.push(p.metrics.loss);
      if (job.losses.length > MAX_LOSSES) job.losses.splice(0, job.losses.length - MAX_LOSSES);
    }
    const m = p.metrics;
    if (m?.epoch !== undefined && m.epochLoss !== undefined) {
      const run = m.run ?? 'final';
      if (!job.epochs.some((e) => e.run === run && e.epoch === m.epoch))
        job.epochs.push({
          run,
          epoch: m.epoch,
          loss: m.epochLoss,
          validationAccuracy: m.validationAccuracy ?? null,
        });
    }
    const changed = p.phase !== job.phase.name;
    if (changed) job.phase = { name: p.phase, started: now };
    // The ETA comes from the whole run's pace when the use case reports it (fine-tuning: caching, folds,
    // steps as one count of work), else from this phase's.
    if (p.overall && job.overallStarted === null) job.overallStarted = now;
    const basis = p.overall ?? { done: p.done, total: p.total };
    const since = p.overall ? (job.overallStarted as number) : job.phase.started;
    const elapsed = (now - since) / 1000;
    job.progress = {
      phase: p.phase,
      done: p.done,
      total: p.total,
      etaSeconds:
        basis.done > 0 && basis.total > basis.done && elapsed > 0.5
          ? ((basis.total - basis.done) * elapsed) / basis.done
          : null,
      ...(p.overall && p.overall.total > 0 ? { fraction: p.overall.done / p.overall.total } : {}),
      ...(p.message ? { message: p.message } : {}),
      ...(p.metrics ? { metrics: p.metrics } : {}),
    };
    // ~10 Hz to the window; a phase change, the last step and every loss value go through.
    if (
      !changed &&
      now - job.lastEmit < 100 &&
      p.done < p.total &&
      p.metrics?.loss === undefined &&
      p.metrics?.epoch === undefined
    )
      return;
    job.lastEmit = now;
    this.options.emit({ type: 'progress', jobId: job.id, kind: job.kind, progress: job.progress });
  }

  private end(job: Running, m: Exclude<FromWorker, { type: 'progress' }>): void {
    if (job.ended) return;
    job.ended = true;
    if (job.hardStop) clearTimeout(job.hardStop);
    const { id: jobId, kind, project } = job;
    // The worker ends its row itself; this covers a worker that could not, or was stopped.
    const status = project?.db.open ? project.jobs.get(jobId)?.status : undefined;
    const open = status === 'queued' || status === 'running';
    if (m.type === 'cancelled') {
      if (open && project) recordCancelled(project, jobId, kind);
      this.options.emit({ type: 'cancelled', jobId, kind });
    } else if (m.type === 'failed') {
      if (open && project) project.jobs.fail(jobId, new FewShotError(m.error.code, m.error.message));
      this.options.emit({ type: 'failed', jobId, kind, error: m.error satisfies ErrorData });
    } else this.options.emit({ type: 'done', jobId, kind, result: m.result } as JobEvent);
  }
}
