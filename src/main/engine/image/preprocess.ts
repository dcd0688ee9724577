// A backbone's evaluation transform, as torchvision does it: resize the shorter side (bilinear with
// antialiasing), centre-crop, then channel order, scale, mean and std into the model's tensor layout.

import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { ViewSpec } from '../../../shared/tta.ts';
import { decoder, probeImage, toRgb, type DecodeLimits, DEFAULT_LIMITS, type RgbImage } from './decode.ts';

/** Python's round(): halves go to the even neighbour (torchvision's CenterCrop uses it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface CropGeometry {
  resizeWidth: number;
  resizeHeight: number;
  left: number;
  top: number;
}

/** torchvision Resize(shorter) + CenterCrop(height, width) geometry for an image of w × h. */
export function cropGeometry(
  w: number,
  h: number,
  spec: Pick<PreprocessSpec, 'height' | 'width' | 'resizeShorter'>,
): CropGeometry {
  const shorter = spec.resizeShorter ?? Math.round((Math.max(spec.height, spec.width) * 256) / 224);
  let rw: number;
  let rh: number;
  if (w <= h) {
    rw = shorter;
    rh = Math.floor((shorter * h) / w);
  } else {
    rh = shorter;
    rw = Math.floor((shorter * w) / h);
  }
  // A crop larger than the resized image cannot happen with shorter >= crop; guard against odd specs.
  rw = Math.max(rw, spec.width);
  rh = Math.max(rh, spec.height);
  return {
    resizeWidth: rw,
    resizeHeight: rh,
    left: roundHalfEven((rw - spec.width) / 2),
    top: roundHalfEven((rh - spec.height) / 2),
  };
}

/** Decodes, resizes and crops to the model's input size; 8-bit sRGB HWC. */
export async function evalCrop(
  bytes: Uint8Array,
  spec: PreprocessSpec,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<RgbImage> {
  // The probe refuses what is not an image, SVG and oversized files before any pixel is decoded.
  const info = await probeImage(bytes, limits);
  const g = cropGeometry(info.width, info.height, spec);
  return toRgb(
    decoder(bytes, limits)
      .resize(g.resizeWidth, g.resizeHeight, { fit: 'fill', kernel: 'linear' })
      .extract({ left: g.left, top: g.top, width: spec.width, height: spec.height }),
    info.format,
  );
}

/**
 * The views of test-time augmentation from one decode: the image resized as for the centre crop, then
 * each view cut (and mirrored) from it. The first view is pixel for pixel the centre crop of evalCrop.
 */
export async function evalViews(
  bytes: Uint8Array,
  spec: PreprocessSpec,
  views: readonly ViewSpec[],
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<RgbImage[]> {
  // The centre crop comes from evalCrop itself (libvips' region arithmetic can differ by a level in a
  // few pixels between a cropped resize and a crop of the whole resize), so that view 0 of every kind
  // is exactly the single-view input.
  const centre = await evalCrop(bytes, spec, limits);
  let full: { image: RgbImage; g: CropGeometry } | null = null;
  if (views.some((v) => v.crop !== 'centre')) {
    const info = await probeImage(bytes, limits);
    const g = cropGeometry(info.width, info.height, spec);
    const image = await toRgb(
      decoder(bytes, limits).resize(g.resizeWidth, g.resizeHeight, { fit: 'fill', kernel: 'linear' }),
      info.format,
    );
    full = { image, g };
  }
  const whole = { width: spec.width, height: spec.height };
  return views.map((v) =>
    v.crop === 'centre'
      ? v.flip
        ? cropView(centre, spec.width, spec.height, v, {
            resizeWidth: whole.width,
            resizeHeight: whole.height,
            left: 0,
            top: 0,
          })
        : centre
      : cropView(
          (full as { image: RgbImage }).image,
          spec.width,
          spec.height,
          v,
          (full as { g: CropGeometry }).g,
        ),
  );
}

function cropView(full: RgbImage, w: number, h: number, v: ViewSpec, g: CropGeometry): RgbImage {
  const right = full.width - w;
  const bottom = full.height - h;
  const [left, top] =
    v.crop === 'centre'
      ? [g.left, g.top]
      : v.crop === 'top-left'
        ? [0, 0]
        : v.crop === 'top-right'
          ? [right, 0]
          : v.crop === 'bottom-left'
            ? [0, bottom]
            : [right, bottom];
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const src = ((y + top) * full.width + left) * 3;
    if (!v.flip) out.set(full.data.subarray(src, src + w * 3), y * w * 3);
    else
      for (let x = 0; x < w; x++) {
        const s = src + (w - 1 - x) * 3;
        const d = (y * w + x) * 3;
        out[d] = full.data[s] as number;
        out[d + 1] = full.data[s + 1] as number;
        out[d + 2] = full.data[s + 2] as number;
      }
  }
  return { data: out, width: w, height: h };
}

/** Writes one image into a batch tensor at `index`: y = (x − mean) · scale / std, in the model's layout. */
export function normalizeInto(img: RgbImage, spec: PreprocessSpec, out: Float32Array, index: number): void {
  const { width: W, height: H } = spec;
  if (img.width !== W || img.height !== H)
    throw new Error(`normalizeInto: expected ${W}×${H}, got ${img.width}×${img.height}`);
  const plane = W * H;
  const base = index * 3 * plane;
  const order = spec.channels === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  const mul = [0, 1, 2].map((c) => spec.scale / (spec.std[c] as number));
  const add = [0, 1, 2].map((c) => (-(spec.mean[c] as number) * spec.scale) / (spec.std[c] as number));
  const d = img.data;
  for (let c = 0; c < 3; c++) {
    const src = order[c] as number;
    const m = mul[c] as number;
    const a = add[c] as number;
    if (spec.layout === 'NCHW') {
      const o = base + c * plane;
      for (let p = 0; p < plane; p++) out[o + p] = (d[p * 3 + src] as number) * m + a;
    } else {
      for (let p = 0; p < plane; p++) out[base + p * 3 + c] = (d[p * 3 + src] as number) * m + a;
    }
  }
}

/** Decode + crop + normalise one image into a batch tensor. */
export async function preprocessInto(
  bytes: Uint8Array,
  spec: PreprocessSpec,
  out: Float32Array,
  index: number,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<void> {
  normalizeInto(await evalCrop(bytes, spec, limits), spec, out, index);
}

export function tensorSize(spec: PreprocessSpec): number {
  return 3 * spec.height * spec.width;
}
