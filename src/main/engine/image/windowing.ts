// The 16-bit windowing policy, applied where image bytes are read for a model, a preview or a thumbnail:
// under 'full' the bytes pass unchanged (the decoder maps 0–65535 onto 0–255); under 'percentile' a 16-bit
// PNG or TIFF is rendered once to an 8-bit PNG with its own 0.5–99.5 % range stretched, so every later
// step (crops, augmentations, thumbnails) sees the same pixels. DICOM keeps its own VOI window.

import sharp from 'sharp';
import { PERCENTILE_WINDOW, type HighBitDepth } from '../../../shared/domain.ts';
import { ImageError } from './decode-error.ts';
import { DEFAULT_LIMITS, type DecodeLimits } from './decode.ts';
import { isDicom } from './dicom.ts';
import { sniffImage } from './sniff.ts';

/** The policy a trained model was built under; models from before the setting existed used 'full'. */
export function modelHighBitDepth(model: { params: Record<string, unknown> }): HighBitDepth {
  return model.params.highBitDepth === 'percentile' ? 'percentile' : 'full';
}

/** The sample values at the low and high percentiles (nearest rank over a 65,536-bin histogram). */
export function percentileWindow(
  samples: Uint16Array,
  low: number = PERCENTILE_WINDOW.low,
  high: number = PERCENTILE_WINDOW.high,
): [number, number] {
  const hist = new Uint32Array(65536);
  for (const v of samples) hist[v] = (hist[v] as number) + 1;
  const n = samples.length;
  const rank = (p: number) => Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  const at = (r: number): number => {
    let seen = 0;
    for (let v = 0; v < 65536; v++) {
      seen += hist[v] as number;
      if (seen > r) return v;
    }
    return 65535;
  };
  return [at(rank(low)), at(rank(high))];
}

/** Maps [lo, hi] onto 0–255 and clips; a flat image (hi ≤ lo) falls back to the full range. */
export function stretch(samples: Uint16Array, lo: number, hi: number): Uint8Array {
  const out = new Uint8Array(samples.length);
  if (hi <= lo) {
    for (let i = 0; i < samples.length; i++) out[i] = Math.round((samples[i] as number) / 257);
    return out;
  }
  const scale = 255 / (hi - lo);
  for (let i = 0; i < samples.length; i++) {
    const y = ((samples[i] as number) - lo) * scale;
    out[i] = y <= 0 ? 0 : y >= 255 ? 255 : Math.round(y);
  }
  return out;
}

/** Below this brightest sample a 16-bit image holds at most 14 bits: by the full range it shows ≤ 63/255. */
export const DIM_16BIT_MAX = 16384;

/** The brightest sample of a 16-bit PNG or TIFF (first page), or null for any other image. */
export async function brightest16(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<number | null> {
  if (isDicom(bytes)) return null;
  const kind = sniffImage(bytes);
  if (kind.kind !== 'image' || (kind.format !== 'png' && kind.format !== 'tiff')) return null;
  const input = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error', pages: 1, page: 0 });
  if ((await input.metadata()).depth !== 'ushort') return null;
  const { channels } = await input.stats();
  return Math.max(...channels.map((c) => c.max));
}

/** The bytes to decode under `policy`: unchanged, or a 16-bit PNG/TIFF rendered to an 8-bit PNG. */
export async function windowed(
  bytes: Uint8Array,
  policy: HighBitDepth,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<Uint8Array> {
  if (policy === 'full' || isDicom(bytes)) return bytes;
  const kind = sniffImage(bytes);
  if (kind.kind !== 'image' || (kind.format !== 'png' && kind.format !== 'tiff')) return bytes;
  try {
    const input = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error', pages: 1, page: 0 });
    const meta = await input.metadata();
    if (meta.depth !== 'ushort') return bytes;
    const colour = (meta.channels ?? 1) >= 3;
    const { data, info } = await input
      .autoOrient()
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace(colour ? 'rgb16' : 'grey16')
      .raw({ depth: 'ushort' })
      .toBuffer({ resolveWithObject: true });
    const samples = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
    const [lo, hi] = percentileWindow(samples);
    return await sharp(stretch(samples, lo, hi), {
      raw: { width: info.width, height: info.height, channels: info.channels },
    })
      .png()
      .toBuffer();
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError('CORRUPT_IMAGE', `The 16-bit image could not be windowed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
