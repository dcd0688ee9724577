// Long jobs, written once: their kinds, what each takes and returns, their progress and the events the
// window receives. A job's id is the id of its row in the project file, from the request to the end.

import type { ImportSummary, FeatureSummary } from './domain.ts';
import type { EmbeddingsSummary } from './embeddings.ts';
import type { ErrorData } from './errors.ts';
import type { Request } from './requests.ts';
import type { TrainMeasurement } from './train-estimate.ts';
import type {
  ClassifySummary,
  CurveResult,
  DatasetWarning,
  EvaluationResult,
  ExportSummary,
  ReportResult,
  ReviewData,
  SuggestResult,
  TrainResult,
  TryResult,
} from './results.ts';

export const JOB_KINDS = [
  'import',
  'features',
  'checks',
  'train',
  'evaluate',
  'curve',
  'review',
  'batch',
  'report',
  'export',
  'audit-export',
  'backbone-add',
  'train-estimate',
  'embeddings',
  'try',
  'suggest',
] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** Jobs of the app rather than of a project (adding a backbone): they run with no project open, and have no row. */
export const APP_JOB_KINDS = ['backbone-add'] as const satisfies readonly JobKind[];
export type AppJobKind = (typeof APP_JOB_KINDS)[number];
export type ProjectJobKind = Exclude<JobKind, AppJobKind>;

export function isAppJobKind(kind: JobKind): kind is AppJobKind {
  return (APP_JOB_KINDS as readonly JobKind[]).includes(kind);
}

/** A backbone just installed, as the window shows it. */
export interface BackboneAdded {
  id: string;
  architecture: string;
  featureDim: number;
}

export const JOB_STATUSES = ['queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** What each kind of job returns when it is done. */
export interface JobResults {
  import: ImportSummary;
  features: FeatureSummary;
  checks: { warnings: DatasetWarning[] };
  train: TrainResult;
  evaluate: EvaluationResult;
  curve: CurveResult;
  review: ReviewData;
  batch: ClassifySummary;
  report: ReportResult;
  export: ExportSummary;
  'audit-export': { out: string; entries: number };
  'backbone-add': BackboneAdded;
  'train-estimate': TrainMeasurement;
  embeddings: EmbeddingsSummary;
  try: TryResult;
  suggest: SuggestResult;
}

export type JobRequests = { [K in JobKind]: Request<K> };
export type JobResult = JobResults[JobKind];

export interface JobProgress {
  phase: string;
  done: number;
  total: number;
  /** Seconds left, from the whole run's pace; null until there is enough to go on. */
  etaSeconds: number | null;
  /** The whole run done, 0–1, where the job counts its phases as one (fine-tuning: caching, folds, steps). */
  fraction?: number;
  message?: string;
  /** Training figures for the live chart (loss of the current fit). */
  metrics?: {
    loss?: number;
    /** Fine-tuning, at the end of each epoch: the epoch (1-based), its mean training loss, held-out accuracy. */
    epoch?: number;
    epochLoss?: number;
    validationAccuracy?: number | null;
    /** Which fit the epoch belongs to ("fold 1/3", "final"): each fit's epochs are one series. */
    run?: string;
  };
}

/** How far a job is, 0–1, for its progress bar: the whole run where it is counted as one, else this phase. */
export function progressFraction(p: JobProgress | null | undefined): number {
  if (!p) return 0;
  if (p.fraction !== undefined) return Math.min(1, Math.max(0, p.fraction));
  return p.total > 0 ? Math.min(1, p.done / p.total) : 0;
}

/** One finished epoch of a fine-tuning fit, for the Train screen's chart. */
export interface EpochPoint {
  run: string;
  epoch: number;
  loss: number;
  validationAccuracy: number | null;
}

/** The job events stream: tagged by `type` and `kind`, at most ~10 progress events per second per job. */
export type JobEvent = {
  [K in JobKind]:
    | { type: 'progress'; jobId: string; kind: K; progress: JobProgress }
    | { type: 'done'; jobId: string; kind: K; result: JobResults[K] }
    | { type: 'failed'; jobId: string; kind: K; error: ErrorData }
    | { type: 'cancelled'; jobId: string; kind: K };
}[JobKind];

/** A job as `jobs.list` shows it: running ones with their latest progress, so a new window re-attaches. */
export interface JobSummary {
  id: string;
  kind: JobKind;
  status: JobStatus;
  createdAt: string;
  updatedAt: string;
  progress: JobProgress | null;
  /** Loss values so far (running training jobs), for the live chart after a reload. */
  losses: number[];
  /** Per finished epoch (running fine-tuning jobs): mean training loss and held-out accuracy. */
  epochs: EpochPoint[];
  error: ErrorData | null;
  /** The model the job works on (train: none until it is done), so a screen finds its own jobs. */
  modelId: string | null;
  /** What the job was asked to do (its request), so a re-attached window shows the run's own settings. */
  request: Record<string, unknown> | null;
}
