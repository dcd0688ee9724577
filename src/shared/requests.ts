// What each use case takes, as zod schemas: the window's channels, the command line and the job workers
// parse the same objects, so a setting cannot exist on one face and be missing on another.

import { TTA_KINDS } from './tta.ts';
import { z } from 'zod';
import { AugmentSpecSchema } from './augment.ts';
import { FINETUNE_STRATEGIES, FROZEN_STRATEGIES, TRAIN_STRATEGIES } from './strategies.ts';

export const pathSchema = z.string().min(1).max(4096);
export const backboneIdSchema = z.string().min(1).max(200);
/** A model or batch run by its id or a unique prefix of it (the command line prints short ids). */
export const recordIdSchema = z.string().min(1).max(200);
const seed = z.number().int().min(0);

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

export const DEVICES = ['auto', 'cpu', 'gpu'] as const;

/** Fine-tuning settings; `lr` is the head's learning rate, the backbone's defaults to a tenth of it. */
export const FinetuneSettingsSchema = z.strictObject({
  epochs: z.number().int().min(1).max(200).optional(),
  lr: z.number().positive().max(1).optional(),
  lrBackbone: z.number().positive().max(1).optional(),
  augment: AugmentSpecSchema.optional(),
  device: z.enum(DEVICES).optional(),
  adaptBatchNorm: z.boolean().optional(),
});

const frozenTrain = z.strictObject({
  strategy: z.enum(FROZEN_STRATEGIES),
  backbone: backboneIdSchema,
  seed,
  name: z.string().min(1).max(200).optional(),
  classBalanced: z.boolean().optional(),
  weightDecay: z.number().positive().optional(),
});

/**
 * The pace the Train screen measured for this backbone, strategy and device (its duration estimate): the
 * run's progress weighs caching and steps by it, so the ETA holds from the first second. Not a setting: it
 * changes nothing the run computes.
 */
export const RunPaceSchema = z.strictObject({
  stepSeconds: z.number().positive().max(3600),
  prefixSecondsPerImage: z.number().nonnegative().max(3600),
  batchSize: z.number().int().min(1).max(4096),
});
export type RunPace = z.output<typeof RunPaceSchema>;

const finetuneTrain = z.strictObject({
  strategy: z.enum(FINETUNE_STRATEGIES),
  backbone: backboneIdSchema,
  seed,
  name: z.string().min(1).max(200).optional(),
  ...FinetuneSettingsSchema.shape,
  pace: RunPaceSchema.optional(),
});

export const REQUESTS = {
  import: z.strictObject({
    folder: pathSchema,
    groupsCsv: pathSchema.optional(),
    groupColumn: z.string().min(1).max(200).optional(),
    frames: z.enum(['first', 'each']).optional(),
    maxPixels: z.number().int().positive().optional(),
  }),
  features: z.strictObject({
    backbone: backboneIdSchema,
    batchSize: z.number().int().min(1).max(512).optional(),
    threads: z.number().int().min(1).max(256).optional(),
    device: z.enum(DEVICES).optional(),
  }),
  checks: z.strictObject({ backbone: backboneIdSchema }),
  train: z.discriminatedUnion('strategy', [frozenTrain, finetuneTrain]),
  evaluate: z.strictObject({
    backbone: backboneIdSchema,
    strategy: z.enum(TRAIN_STRATEGIES),
    protocol: ProtocolSchema,
    seed,
    groupAware: z.boolean().optional(),
    finetune: FinetuneSettingsSchema.optional(),
    /** Score each test image over these views (frozen-feature strategies). */
    tta: z.enum(TTA_KINDS).optional(),
  }),
  curve: z.strictObject({
    backbone: backboneIdSchema,
    strategy: z.enum(FROZEN_STRATEGIES),
    seed,
    episodes: z.number().int().min(1).max(10000).optional(),
    groupAware: z.boolean().optional(),
  }),
  review: z.strictObject({
    modelId: recordIdSchema,
    protocol: ProtocolSchema.optional(),
    groupAware: z.boolean().optional(),
    /** Also evaluate with test-time augmentation, to compare (frozen-feature models). */
    tta: z.enum(TTA_KINDS).optional(),
  }),
  batch: z.strictObject({
    modelId: recordIdSchema,
    folder: pathSchema,
    out: pathSchema,
    sortInto: pathSchema.optional(),
    link: z.boolean().optional(),
    minConfidence: z.number().min(0).max(1),
    batchSize: z.number().int().min(1).max(512).optional(),
    device: z.enum(DEVICES).optional(),
    tta: z.enum(TTA_KINDS).optional(),
  }),
  report: z.discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('evaluation'),
      modelId: recordIdSchema,
      out: pathSchema,
      protocol: ProtocolSchema.optional(),
      groupAware: z.boolean().optional(),
      /** Also report the evaluation with test-time augmentation, beside the single-view one. */
      tta: z.enum(TTA_KINDS).optional(),
    }),
    z.strictObject({ kind: z.literal('batch'), runId: recordIdSchema, out: pathSchema }),
  ]),
  export: z.strictObject({ modelId: recordIdSchema, out: pathSchema }),
  'audit-export': z.strictObject({ out: pathSchema }),
  /** Install a backbone from a file the user has (.onnx, a PyTorch .pth, a TF.js model.json). */
  'backbone-add': z.strictObject({
    file: pathSchema,
    id: backboneIdSchema.optional(),
    preset: z.string().min(1).max(100).optional(),
  }),
  /** Measure one training step and one batch of the frozen layers: the run's duration before it starts. */
  'train-estimate': z.strictObject({
    strategy: z.enum(FINETUNE_STRATEGIES),
    backbone: backboneIdSchema,
    device: z.enum(DEVICES).optional(),
    adaptBatchNorm: z.boolean().optional(),
  }),
  /** Every image's feature vector to `out` (.csv or .npy, by its extension); `force` overwrites. */
  embeddings: z.strictObject({
    backbone: backboneIdSchema,
    out: pathSchema,
    includeExcluded: z.boolean().optional(),
    force: z.boolean().optional(),
    batchSize: z.number().int().min(1).max(512).optional(),
    threads: z.number().int().min(1).max(256).optional(),
    device: z.enum(DEVICES).optional(),
  }),
  /**
   * One image through a model ("Try an image"): its class, probabilities and nearest training images. The
   * window's dropped bytes are written to a file by the host first; the request names only that file.
   */
  try: z.strictObject({
    modelId: recordIdSchema,
    file: pathSchema,
    /** The name to show (a dropped file's own name); defaults to the file's base name. */
    name: z.string().min(1).max(500).optional(),
    neighbours: z.number().int().min(0).max(24).optional(),
  }),
  /** Suggested classes for the project's unlabelled images, most uncertain first. */
  suggest: z.strictObject({
    modelId: recordIdSchema,
    limit: z.number().int().min(1).max(100000).optional(),
  }),
} as const;

export type RequestKind = keyof typeof REQUESTS;
/** A use case's request after its schema applied defaults. */
export type Request<K extends RequestKind> = z.output<(typeof REQUESTS)[K]>;
export type TrainRequest = Request<'train'>;
export type FinetuneSettings = z.output<typeof FinetuneSettingsSchema>;
export type FrozenTrainRequest = z.output<typeof frozenTrain>;
export type FinetuneTrainRequest = z.output<typeof finetuneTrain>;

export function isFinetuneRequest(r: TrainRequest): r is FinetuneTrainRequest {
  return (FINETUNE_STRATEGIES as readonly string[]).includes(r.strategy);
}
