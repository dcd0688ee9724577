// The typed contract between the window and the main process: one zod schema per channel input (parsed
// from `unknown` at the edge), the output type each channel returns, and the job events stream. The same
// contract is served over Electron IPC and over the browser host's WebSocket.

import { z } from 'zod';
import { AugmentSpecSchema } from './augment.ts';
import type { CHANNEL_NAMES } from './channels.ts';
import type { BackboneInfo } from './backbones.ts';
import { HIGH_BIT_DEPTH_POLICIES } from './domain.ts';
import type { BackupInfo, HighBitDepth, ImportSummary, RecoveryReport, RejectedFile } from './domain.ts';
import type { ErrorData, Result } from './errors.ts';
import type {
  ClassifySummary,
  CurvePoint,
  EvaluationResult,
  ModelRecord,
  PredictionRow,
  TrainResult,
} from './results.ts';

const id = z.number().int().positive();
const path = z.string().min(1).max(4096);
const empty = z.strictObject({});
const trainStrategy = z.enum(['prototype', 'linear', 'last-stage', 'full']);
const backboneId = z.string().min(1).max(200);

export const ProtocolSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('episodes'),
    shots: z.number().int().min(1).max(500),
    episodes: z.number().int().min(1).max(10000),
    ways: z.number().int().min(2).optional(),
    queries: z.number().int().min(1).optional(),
  }),
  z.strictObject({ kind: z.literal('kfold'), folds: z.number().int().min(2).max(50) }),
  z.strictObject({ kind: z.literal('loo') }),
  z.strictObject({ kind: z.literal('holdout'), testFraction: z.number().gt(0).lt(1) }),
]);

export const INPUTS = {
  'app.info': empty,
  'project.create': z.strictObject({ file: path }),
  'project.open': z.strictObject({ file: path }),
  'project.current': empty,
  'project.recent': empty,
  'project.settings': z.strictObject({ highBitDepth: z.enum(HIGH_BIT_DEPTH_POLICIES).optional() }),
  'project.recovery': z.strictObject({ file: path }),
  'project.recover': z.strictObject({ file: path }),
  'project.restore': z.strictObject({ file: path, backup: path }),
  'models.list': empty,
  'dataset.import': z.strictObject({
    folder: path,
    groupsCsv: path.optional(),
    frames: z.enum(['first', 'each']).optional(),
  }),
  'dataset.summary': empty,
  'dataset.images': z.strictObject({
    className: z.string().nullable().optional(),
    excluded: z.boolean().optional(),
    offset: z.number().int().min(0),
    limit: z.number().int().min(1).max(2000),
  }),
  'dataset.relabel': z.strictObject({
    imageIds: z.array(id).min(1).max(100000),
    className: z.string().trim().min(1).max(200),
  }),
  'dataset.exclude': z.strictObject({ imageIds: z.array(id).min(1).max(100000), excluded: z.boolean() }),
  'dataset.warnings': z.strictObject({ backbone: backboneId }),
  'augment.preview': z.strictObject({
    imageId: id,
    spec: AugmentSpecSchema,
    n: z.number().int().min(1).max(16),
    seed: z.number().int().min(0),
  }),
  'train.recommend': empty,
  'train.start': z.strictObject({
    backbone: backboneId,
    strategy: trainStrategy,
    epochs: z.number().int().min(1).max(200).optional(),
    lr: z.number().positive().max(1).optional(),
    augment: AugmentSpecSchema.optional(),
    seed: z.number().int().min(0),
    classBalanced: z.boolean().optional(),
    weightDecay: z.number().positive().optional(),
  }),
  'train.models': empty,
  'review.start': z.strictObject({ modelId: z.string().min(1), protocol: ProtocolSchema.optional() }),
  'batch.start': z.strictObject({
    modelId: z.string().min(1),
    folder: path,
    out: path,
    sortInto: path.optional(),
    minConfidence: z.number().min(0).max(1),
  }),
  'batch.results': z.strictObject({
    runId: z.string().min(1),
    filter: z.union([
      z.literal('all'),
      z.literal('uncertain'),
      z.literal('error'),
      z.strictObject({ predicted: z.string() }),
    ]),
    offset: z.number().int().min(0),
    limit: z.number().int().min(1).max(2000),
  }),
  'report.export': z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('evaluation'), modelId: z.string().min(1), out: path }),
    z.strictObject({ kind: z.literal('batch'), runId: z.string().min(1), out: path }),
  ]),
  'model.export': z.strictObject({ modelId: z.string().min(1), out: path }),
  'audit.list': z.strictObject({ limit: z.number().int().min(1).max(10000) }),
  'audit.export': z.strictObject({ out: path }),
  'jobs.cancel': z.strictObject({ jobId: z.string().min(1) }),
  'jobs.list': empty,
} as const;

export type Channel = keyof typeof INPUTS;
// The preload's list and the schemas name the same channels (a compile error otherwise).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const CHANNEL_LISTS_AGREE: Same<Channel, (typeof CHANNEL_NAMES)[number]> = true;
export const CHANNELS = Object.keys(INPUTS) as Channel[];
export type Input<C extends Channel> = z.input<(typeof INPUTS)[C]>;
/** What a handler receives: the input after its schema applied defaults. */
export type ParsedInput<C extends Channel> = z.output<(typeof INPUTS)[C]>;

export interface ProjectInfo {
  file: string;
  name: string;
  images: number;
  classes: number;
  /** How 16-bit PNG/TIFF images become 8-bit in this project (see HighBitDepth). */
  highBitDepth: HighBitDepth;
}

export interface ImageItem {
  id: number;
  relPath: string;
  className: string | null;
  groupKey: string | null;
  excluded: boolean;
  width: number;
  height: number;
}

export interface DatasetSummary {
  total: number;
  unlabelled: number;
  excluded: number;
  groups: number;
  classes: { name: string; images: number; excluded: number }[];
  rejections: RejectedFile[];
}

export interface DatasetWarning {
  kind: 'no-groups' | 'near-duplicate' | 'label-conflict' | 'small-class' | 'imbalance';
  message: string;
  imageIds: number[];
}

export interface Recommendation {
  strategy: 'prototype' | 'linear' | 'last-stage' | 'full';
  reason: string;
  minShots: number;
  medianShots: number;
  /** Strategies the Train screen lists, with whether this build can run them. */
  options: { strategy: string; label: string; available: boolean; note: string }[];
}

export interface AuditEntryView {
  id: number;
  at: string;
  actor: string;
  action: string;
  details: Record<string, unknown>;
  hash: string;
}

export interface JobInfo {
  jobId: string;
}

export interface ReviewData {
  model: ModelRecord;
  evaluation: EvaluationResult;
  curve: CurvePoint[];
  /** Two classes only: the ROC curve of the second class against the first. */
  roc: { fpr: number; tpr: number }[] | null;
}

export interface Outputs {
  'app.info': {
    version: string;
    platform: string;
    userModelsDir: string;
    transport: 'electron' | 'websocket';
  };
  'project.create': ProjectInfo;
  'project.open': ProjectInfo;
  'project.current': ProjectInfo | null;
  'project.recent': { files: string[] };
  'project.settings': ProjectInfo;
  'project.recovery': { file: string; problems: string[]; backups: BackupInfo[] };
  'project.recover': RecoveryReport;
  'project.restore': ProjectInfo;
  'models.list': { models: BackboneInfo[]; problems: { dir: string; message: string }[] };
  'dataset.import': JobInfo;
  'dataset.summary': DatasetSummary;
  'dataset.images': { total: number; images: ImageItem[] };
  'dataset.relabel': { updated: number };
  'dataset.exclude': { updated: number };
  'dataset.warnings': { warnings: DatasetWarning[] };
  'augment.preview': { variants: string[] };
  'train.recommend': Recommendation;
  'train.start': JobInfo;
  'train.models': { models: ModelRecord[] };
  'review.start': JobInfo;
  'batch.start': JobInfo;
  'batch.results': { total: number; rows: PredictionRow[] };
  'report.export': JobInfo;
  'model.export': JobInfo;
  'audit.list': { entries: AuditEntryView[]; intact: boolean; brokenAt: number | null };
  'audit.export': { out: string; entries: number };
  'jobs.cancel': { cancelled: boolean };
  'jobs.list': { jobs: { id: string; kind: string; status: string; createdAt: string }[] };
}

export type Output<C extends Channel> = Outputs[C];

export type JobKind = 'import' | 'train' | 'review' | 'batch' | 'report' | 'export';

export interface JobProgress {
  phase: string;
  done: number;
  total: number;
  etaSeconds: number | null;
  message?: string;
  /** Training figures for the live chart (loss of the current fit). */
  metrics?: { loss?: number };
}

export interface ReportResult {
  out: string;
  bytes: number;
}

export interface ExportSummary {
  dir: string;
  files: string[];
  modelSha256: string;
  parity: { images: number; sameClass: number; maxProbabilityDifference: number; passed: boolean };
}

export type JobResult =
  ImportSummary | TrainResult | ReviewData | ClassifySummary | ReportResult | ExportSummary;

/** The job events stream: tagged by `type`, at most ~10 progress events per second per job. */
export type JobEvent =
  | { type: 'progress'; jobId: string; kind: JobKind; progress: JobProgress }
  | { type: 'done'; jobId: string; kind: JobKind; result: JobResult }
  | { type: 'failed'; jobId: string; kind: JobKind; error: ErrorData }
  | { type: 'cancelled'; jobId: string; kind: JobKind };

/** Messages on the wire (WebSocket or Electron's utility-process port). */
export type WireRequest = { id: number; channel: string; input: unknown };
export type WireMessage = { id: number; result: Result<unknown> } | { event: JobEvent };

/** The API the renderer sees: one function per channel, plus the job events. */
export type FewShotApi = { [C in Channel]: (input: Input<C>) => Promise<Result<Output<C>>> } & {
  onJobEvent(listener: (e: JobEvent) => void): () => void;
};
