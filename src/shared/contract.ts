// The typed contract between the window and the main process: one zod schema per channel input (parsed
// from `unknown` at the edge), the output type each channel returns, and the job events stream. The same
// contract is served over Electron IPC and over the browser host's WebSocket. Channels that start long
// work take the use case's own request schema (requests.ts) and answer with the job's id at once.

import { TTA_KINDS } from './tta.ts';
import { z } from 'zod';
import { AugmentSpecSchema } from './augment.ts';
import type { CHANNEL_NAMES } from './channels.ts';
import type { BackboneInfo } from './backbones.ts';
import { HIGH_BIT_DEPTH_POLICIES } from './domain.ts';
import type { BackupInfo, HighBitDepth, RecoveryReport, RejectedFile } from './domain.ts';
import type { EngineNotice } from './engine.ts';
import type { ErrorData, Result } from './errors.ts';
import { FilesListSchema, type FolderListing, type PickRequest, type PickResult } from './files.ts';
import type { JobEvent, JobSummary } from './jobs.ts';
import { pathSchema, ProtocolSchema, recordIdSchema, REQUESTS } from './requests.ts';
import type { BatchRunView, ModelDeleted, ModelRecord, PredictionRow, ReviewData } from './results.ts';
import type { TrainStrategy } from './strategies.ts';

export { ProtocolSchema };
export type { JobEvent, JobKind, JobProgress, JobResult, JobResults, JobSummary } from './jobs.ts';
export type { DatasetWarning, ExportSummary, ReportResult, ReviewData } from './results.ts';
export type { LabelSuggestion, ModelDeleted, Neighbour, SuggestResult, TryResult } from './results.ts';

const id = z.number().int().positive();
const empty = z.strictObject({});
const imageFilter = {
  className: z.string().nullable().optional(),
  excluded: z.boolean().optional(),
  /** Part of the file's path, case-insensitive. */
  search: z.string().max(500).optional(),
  /** Only these images (Review looks up the images it shows). */
  ids: z.array(id).min(1).max(2000).optional(),
};

export const INPUTS = {
  'app.info': empty,
  'project.create': z.strictObject({ file: pathSchema }),
  'project.open': z.strictObject({ file: pathSchema }),
  'project.current': empty,
  'project.recent': empty,
  'project.settings': z.strictObject({ highBitDepth: z.enum(HIGH_BIT_DEPTH_POLICIES).optional() }),
  'project.recovery': z.strictObject({ file: pathSchema }),
  'project.recover': z.strictObject({ file: pathSchema }),
  'project.restore': z.strictObject({ file: pathSchema, backup: pathSchema }),
  'models.list': empty,
  'models.add': REQUESTS['backbone-add'],
  'files.list': FilesListSchema,
  'dataset.import': REQUESTS.import,
  'dataset.summary': empty,
  'dataset.images': z.strictObject({
    ...imageFilter,
    offset: z.number().int().min(0),
    limit: z.number().int().min(1).max(2000),
  }),
  'dataset.ids': z.strictObject(imageFilter),
  'dataset.relabel': z.strictObject({
    imageIds: z.array(id).min(1).max(100000),
    /** null: back to unlabelled (undoing a first label). */
    className: z.string().trim().min(1).max(200).nullable(),
  }),
  'dataset.exclude': z.strictObject({ imageIds: z.array(id).min(1).max(100000), excluded: z.boolean() }),
  'dataset.checks': REQUESTS.checks,
  'dataset.exportEmbeddings': REQUESTS.embeddings,
  'augment.preview': z.strictObject({
    imageId: id,
    spec: AugmentSpecSchema,
    n: z.number().int().min(1).max(16),
    seed: z.number().int().min(0),
  }),
  'train.recommend': empty,
  'train.start': REQUESTS.train,
  'train.models': empty,
  'train.estimate': REQUESTS['train-estimate'],
  'review.get': z.strictObject({
    modelId: recordIdSchema,
    protocol: ProtocolSchema.optional(),
    tta: z.enum(TTA_KINDS).optional(),
  }),
  'review.start': REQUESTS.review,
  'batch.start': REQUESTS.batch,
  'batch.runs': empty,
  'batch.results': z.strictObject({
    runId: recordIdSchema,
    filter: z.union([
      z.literal('all'),
      z.literal('uncertain'),
      z.literal('error'),
      z.strictObject({ predicted: z.string() }),
    ]),
    offset: z.number().int().min(0),
    limit: z.number().int().min(1).max(2000),
  }),
  'report.export': REQUESTS.report,
  'model.export': REQUESTS.export,
  /** Deletes a model with its batch runs and stored evaluations (audited); refused while a job uses it. */
  'model.delete': z.strictObject({ modelId: recordIdSchema }),
  /**
   * Try one image: a file on this machine (`file`), or a dropped file's bytes (`data`, base64, with its
   * `name`), which the host writes to a temporary file before the job starts.
   */
  'model.try': z.union([
    z.strictObject({ modelId: recordIdSchema, file: pathSchema }),
    z.strictObject({
      modelId: recordIdSchema,
      name: z.string().min(1).max(500),
      data: z.string().min(1).max(70_000_000),
    }),
  ]),
  'dataset.suggest': REQUESTS.suggest,
  'audit.list': z.strictObject({ limit: z.number().int().min(1).max(10000) }),
  'audit.export': REQUESTS['audit-export'],
  'jobs.cancel': z.strictObject({ jobId: z.string().min(1).max(200) }),
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

export interface StrategyOption {
  strategy: TrainStrategy;
  label: string;
  available: boolean;
  note: string;
}

export interface Recommendation {
  strategy: TrainStrategy;
  reason: string;
  minShots: number;
  medianShots: number;
  /** Strategies the Train screen lists, with whether this build can run them. */
  options: StrategyOption[];
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
  'models.add': JobInfo;
  'files.list': FolderListing;
  'dataset.import': JobInfo;
  'dataset.summary': DatasetSummary;
  'dataset.images': { total: number; images: ImageItem[] };
  'dataset.ids': { ids: number[] };
  'dataset.relabel': { updated: number };
  'dataset.exclude': { updated: number };
  'dataset.checks': JobInfo;
  'dataset.exportEmbeddings': JobInfo;
  'augment.preview': { variants: string[] };
  'train.recommend': Recommendation;
  'train.start': JobInfo;
  'train.models': { models: ModelRecord[] };
  'train.estimate': JobInfo;
  /** The stored evaluation for the project's current data, if one was made; else null. */
  'review.get': { review: ReviewData | null };
  'review.start': JobInfo;
  'batch.start': JobInfo;
  'batch.runs': { runs: BatchRunView[] };
  'batch.results': { total: number; rows: PredictionRow[] };
  'report.export': JobInfo;
  'model.export': JobInfo;
  'model.delete': ModelDeleted;
  'model.try': JobInfo;
  'dataset.suggest': JobInfo;
  'audit.list': { entries: AuditEntryView[]; total: number; intact: boolean; brokenAt: number | null };
  'audit.export': JobInfo;
  'jobs.cancel': { cancelled: boolean };
  'jobs.list': { jobs: JobSummary[] };
}

export type Output<C extends Channel> = Outputs[C];

/** Messages on the wire (WebSocket or Electron's utility-process port). */
export type WireMessage = { id: number; result: Result<unknown> } | { event: JobEvent };

/**
 * The API the renderer sees: one function per channel, plus the job events, and under Electron the
 * native open/save dialog (the browser host has none: its window browses with `files.list`).
 */
export type FewShotApi = { [C in Channel]: (input: Input<C>) => Promise<Result<Output<C>>> } & {
  onJobEvent(listener: (e: JobEvent) => void): () => void;
  pickPath?: (request: PickRequest) => Promise<PickResult>;
  /** Under Electron: where a file or folder dropped on the window is on disk. */
  pathForFile?: (file: File) => string;
  /** Under Electron: the engine's process stopped and was restarted, or is no longer restarted. */
  onEngineNotice?: (listener: (notice: EngineNotice) => void) => () => void;
};

export type { ErrorData };
