// Backbone manifests: what a pretrained feature extractor is and how its input must be prepared.

import { z } from 'zod';

export const PreprocessSchema = z.object({
  name: z.string().min(1),
  layout: z.enum(['NCHW', 'NHWC']),
  height: z.number().int().positive(),
  width: z.number().int().positive(),
  channels: z.enum(['RGB', 'BGR']),
  /** y = (x − mean) · scale / std, with x in 0..255 and mean in the same units, in `channels` order. */
  scale: z.number().positive(),
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  /** Shorter side before the centre crop (torchvision's evaluation transform: 256 for a 224 crop). */
  resizeShorter: z.number().int().positive().optional(),
  note: z.string().optional(),
});
export type PreprocessSpec = z.infer<typeof PreprocessSchema>;

export const BackboneEntrySchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'ids use letters, digits, dot, dash and underscore'),
  architecture: z.string().min(1),
  format: z.enum(['onnx', 'tfjs-layers']),
  file: z.string().min(1),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable()
    .optional(),
  sha256Of: z.string().optional(),
  input: PreprocessSchema,
  output: z.object({
    /** A graph output holding the features; absent means "cut the graph before its classifier". */
    name: z.string().optional(),
    dim: z.number().int().positive(),
    backbone: z.string().optional(),
  }),
  pretraining: z.string().optional(),
  license: z.string().optional(),
  source: z.string().optional(),
  /** The file it was converted from (a PyTorch checkpoint, a TF.js model) and that file's SHA-256. */
  origin: z.object({ file: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).optional(),
  /** Shown when the file is missing: how a lab installs it. */
  install: z.string().optional(),
});
export type BackboneEntry = z.infer<typeof BackboneEntrySchema>;

export const ManifestSchema = z.object({
  schema: z.literal(1),
  models: z.array(z.unknown()),
});

export type BackboneSource = 'builtin' | 'extra' | 'user';

export interface BackboneInfo {
  id: string;
  architecture: string;
  format: BackboneEntry['format'];
  featureDim: number;
  source: BackboneSource;
  present: boolean;
  /** False for formats this build cannot run yet. */
  supported: boolean;
  install?: string;
  pretraining?: string;
}

/** torchvision's ImageNet normalisation, in 0..255 units. */
export const IMAGENET_RGB: Omit<PreprocessSpec, 'name'> = {
  layout: 'NCHW',
  height: 224,
  width: 224,
  channels: 'RGB',
  scale: 1 / 255,
  mean: [0.485 * 255, 0.456 * 255, 0.406 * 255],
  std: [0.229, 0.224, 0.225],
  resizeShorter: 256,
};
