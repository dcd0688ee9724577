// Augmentation settings: one schema for the preview screen, the training loop and the stored run.

import { z } from 'zod';

export const AugmentSpecSchema = z.strictObject({
  hflip: z.boolean().default(true),
  vflip: z.boolean().default(false),
  /** Largest rotation, degrees (uniform in ±rotate). */
  rotate: z.number().min(0).max(180).default(15),
  /** Smallest area kept by the random resized crop (1 = no crop, the evaluation crop). */
  cropScale: z.number().min(0.05).max(1).default(0.6),
  /** Largest shift, as a fraction of the side. */
  translate: z.number().min(0).max(0.5).default(0.05),
  /** Largest zoom change, as a fraction (0.1 → ×0.9…×1.1). */
  scale: z.number().min(0).max(0.5).default(0.1),
  /** Largest brightness and contrast change, as fractions. */
  brightness: z.number().min(0).max(1).default(0.2),
  contrast: z.number().min(0).max(1).default(0.2),
  /** Largest Gaussian blur sigma, pixels of the output. */
  blur: z.number().min(0).max(5).default(0),
  /** Standard deviation of added Gaussian noise, 0–255 units. */
  noise: z.number().min(0).max(64).default(0),
});
export type AugmentSpec = z.infer<typeof AugmentSpecSchema>;

/** The schema's defaults, written out (parsing at load time would run zod in every importer). */
export const DEFAULT_AUGMENT: AugmentSpec = {
  hflip: true,
  vflip: false,
  rotate: 15,
  cropScale: 0.6,
  translate: 0.05,
  scale: 0.1,
  brightness: 0.2,
  contrast: 0.2,
  blur: 0,
  noise: 0,
};

/** No change at all: the evaluation transform. */
export const NO_AUGMENT: AugmentSpec = {
  hflip: false,
  vflip: false,
  rotate: 0,
  cropScale: 1,
  translate: 0,
  scale: 0,
  brightness: 0,
  contrast: 0,
  blur: 0,
  noise: 0,
};

/** "hflip,vflip,rotate=20,crop=0.6,noise=5" (or "none"): the command line's --augment, over `base`. */
export function parseAugment(spec: string | undefined, base: AugmentSpec = DEFAULT_AUGMENT): AugmentSpec {
  if (!spec) return base;
  if (spec === 'none') return NO_AUGMENT;
  const alias: Record<string, keyof AugmentSpec> = { crop: 'cropScale' };
  const out: Record<string, unknown> = { ...base };
  for (const part of spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [k, v] = part.split('=') as [string, string | undefined];
    const key = alias[k] ?? k;
    if (!(key in base)) throw new Error(`Unknown augmentation "${k}"; use ${Object.keys(base).join(', ')}.`);
    out[key] = v === undefined ? true : v === 'false' ? false : Number(v);
  }
  const parsed = AugmentSpecSchema.safeParse(out);
  if (!parsed.success)
    throw new Error(
      `--augment: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
    );
  return parsed.data;
}

/** The augmentation in words, as the Train screen and the report name it ("horizontal flip, rotation ±15°, …"). */
export function describeAugment(a: AugmentSpec): string {
  const parts = [
    a.hflip ? 'horizontal flip' : '',
    a.vflip ? 'vertical flip' : '',
    a.rotate ? `rotation ±${a.rotate}°` : '',
    a.cropScale < 1 ? `random crop keeping ≥ ${Math.round(a.cropScale * 100)} %` : '',
    a.translate ? `shift ±${Math.round(a.translate * 100)} %` : '',
    a.scale ? `zoom ±${Math.round(a.scale * 100)} %` : '',
    a.brightness ? `brightness ±${a.brightness}` : '',
    a.contrast ? `contrast ±${a.contrast}` : '',
    a.blur ? `blur ≤ ${a.blur} px` : '',
    a.noise ? `noise ${a.noise}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'none';
}
