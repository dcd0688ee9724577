// Decoding policy for every image the app reads: strict failure on damage, a pixel limit, EXIF orientation,
// and any colour model (grey, alpha, CMYK, 16-bit) brought to 8-bit sRGB the same way everywhere.
//
// Policy, stated once:
//  - EXIF orientation is applied, so width/height are as the image is meant to be seen.
//  - Alpha is composited onto white (scans and exports with transparency usually mean "paper").
//  - Greyscale is replicated to three equal channels; CMYK is converted to sRGB with its ICC profile.
//  - 16-bit samples are mapped linearly from 0..65535 to 0..255 (full range; no silent clipping), unless the
//    project chose the percentile window, applied before this decoder (see windowing.ts).
//  - Animated or multi-page files: the first frame/page only, unless an import asks for every page of a
//    multi-page TIFF or every frame of a multi-frame DICOM (see pageImages), each then its own image.

import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { sniffImage } from './sniff.ts';
import { ImageError } from './decode-error.ts';
import { decodeDicom, isDicom, probeDicom } from './dicom.ts';

sharp.cache(false); // every image is read once per pass; libvips' cache would only hold memory
sharp.concurrency(1); // parallelism comes from decoding several images at once, not threads within one

export interface DecodeLimits {
  /** Largest width × height accepted (default 100 megapixels). */
  maxPixels: number;
  /** Largest file accepted, in bytes (default 512 MiB). */
  maxBytes: number;
}

export const DEFAULT_LIMITS: DecodeLimits = { maxPixels: 100_000_000, maxBytes: 512 * 1024 * 1024 };

export { ImageError };

export interface ImageInfo {
  format: string;
  /** As displayed, after EXIF orientation. */
  width: number;
  height: number;
  /** Pages (TIFF), frames (DICOM, GIF, WebP); 1 for a still image. */
  pages: number;
}

const WHITE = { r: 255, g: 255, b: 255 };

/** Reads the header only: format and oriented size, with the size and pixel limits checked. */
export async function probeImage(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<ImageInfo> {
  if (bytes.length === 0) throw new ImageError('EMPTY_FILE', 'The file is empty (0 bytes).');
  if (bytes.length > limits.maxBytes)
    throw new ImageError(
      'IMAGE_TOO_LARGE',
      `The file is ${bytes.length} bytes; the limit is ${limits.maxBytes}.`,
    );
  if (isDicom(bytes)) {
    const d = probeDicom(bytes);
    if (d.width * d.height > limits.maxPixels)
      throw new ImageError(
        'IMAGE_TOO_LARGE',
        `The image is ${d.width}×${d.height}; the limit is ${(limits.maxPixels / 1e6).toFixed(1)} MP.`,
      );
    return { format: 'dicom', width: d.width, height: d.height, pages: d.frames };
  }
  const sniffed = sniffImage(bytes);
  if (sniffed.kind === 'unknown')
    throw new ImageError('NOT_AN_IMAGE', 'Not an image file (no known image signature).');
  if (sniffed.kind === 'unsupported') throw new ImageError('UNSUPPORTED_IMAGE', `${sniffed.reason}.`);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (e) {
    throw classify(e, sniffed.format);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new ImageError('CORRUPT_IMAGE', 'The image header gives no size.');
  if (width * height > limits.maxPixels) {
    throw new ImageError(
      'IMAGE_TOO_LARGE',
      `The image is ${width}×${height} (${((width * height) / 1e6).toFixed(1)} MP); the limit is ${(limits.maxPixels / 1e6).toFixed(1)} MP.`,
    );
  }
  return { format: meta.format, width, height, pages: meta.pages ?? 1 };
}

/** Starts the shared decode pipeline: limits, first page, orientation, white background for alpha. */
export function decoder(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS): Sharp {
  if (isDicom(bytes)) {
    // DICOM pixels are rendered to 8 bits here (see dicom.ts), then follow the same path as any image.
    const d = decodeDicom(bytes);
    return sharp(Buffer.from(d.pixels.buffer, d.pixels.byteOffset, d.pixels.byteLength), {
      raw: { width: d.width, height: d.height, channels: d.channels },
    });
  }
  return sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error', pages: 1, page: 0 })
    .autoOrient()
    .flatten({ background: WHITE });
}

/** The image as 8-bit sRGB, HWC, 3 channels. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Finishes a pipeline to 8-bit sRGB raw pixels, mapping decoder failures to typed errors. */
export async function toRgb(pipeline: Sharp, format = 'image'): Promise<RgbImage> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw classify(e, format);
  }
  const { width, height, channels } = out.info;
  if (channels === 3) return { data: out.data, width, height };
  // Defensive: a single-band result is grey; replicate it.
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    const v = out.data[i * channels] ?? 0;
    rgb[j] = v;
    rgb[j + 1] = v;
    rgb[j + 2] = v;
  }
  return { data: rgb, width, height };
}

/** Fully decodes the image (catching truncation anywhere in the stream) into a small sRGB thumbnail. */
export async function validateImage(
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<ImageInfo> {
  const info = await probeImage(bytes, limits);
  await toRgb(decoder(bytes, limits).resize(64, 64, { fit: 'inside' }), info.format);
  return info;
}

function classify(e: unknown, format: string): ImageError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(msg))
    return new ImageError('IMAGE_TOO_LARGE', `The image exceeds the pixel limit (${msg}).`, { cause: e });
  if (/unsupported image format|no loader|not a known file format/i.test(msg))
    return new ImageError(
      'UNSUPPORTED_IMAGE',
      `This ${format} file cannot be decoded here (${firstLine(msg)}).`,
      { cause: e },
    );
  return new ImageError('CORRUPT_IMAGE', `The ${format} data is damaged: ${firstLine(msg)}`, { cause: e });
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).slice(0, 200);
}

/** Most pages or frames one file may turn into (a whole-slide pyramid or a long cine loop is not a set of
 * specimens). */
export const MAX_PAGES = 1000;

export interface PageImage {
  /** A lossless PNG of the page. */
  bytes: Uint8Array;
  width: number;
  height: number;
}

/** Formats whose pages or frames are separate images when an import asks for each of them. */
export function hasSeparablePages(info: ImageInfo): boolean {
  return info.pages > 1 && (info.format === 'tiff' || info.format === 'dicom');
}

/**
 * Every page of a multi-page TIFF or frame of a multi-frame DICOM as its own lossless PNG, oriented, with
 * the page's own bit depth (a 16-bit page stays 16-bit; DICOM frames are rendered through their VOI).
 */
export async function pageImages(
  bytes: Uint8Array,
  info: ImageInfo,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<PageImage[]> {
  if (info.pages > MAX_PAGES)
    throw new ImageError(
      'IMAGE_TOO_LARGE',
      `The file has ${info.pages} pages; at most ${MAX_PAGES} can be imported as separate images.`,
    );
  const out: PageImage[] = [];
  for (let page = 0; page < info.pages; page++) {
    try {
      let pipeline: Sharp;
      if (info.format === 'dicom') {
        const d = decodeDicom(bytes, page);
        pipeline = sharp(Buffer.from(d.pixels.buffer, d.pixels.byteOffset, d.pixels.byteLength), {
          raw: { width: d.width, height: d.height, channels: d.channels },
        });
      } else
        pipeline = sharp(bytes, {
          limitInputPixels: limits.maxPixels,
          failOn: 'error',
          page,
          pages: 1,
        }).autoOrient();
      const { data, info: o } = await pipeline.png().toBuffer({ resolveWithObject: true });
      out.push({ bytes: data, width: o.width, height: o.height });
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw classify(e, `${info.format} page ${page + 1}`);
    }
  }
  return out;
}
