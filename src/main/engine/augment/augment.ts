// Seeded, deterministic augmentation: one implementation for training and for the preview screen.
// Random resized crop in the decoder (sharp), then flips, rotation/zoom/shift (one inverse affine map
// with mirrored borders), brightness/contrast, Gaussian blur and noise on 8-bit RGB. Greyscale stays grey.

import sharp from 'sharp';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { AugmentSpec } from '../../../shared/augment.ts';
import {
  decoder,
  probeImage,
  toRgb,
  DEFAULT_LIMITS,
  type DecodeLimits,
  type RgbImage,
} from '../image/decode.ts';
import { cropGeometry } from '../image/preprocess.ts';
import { Rng } from '../random.ts';

/** The random draws of one augmented view, recorded so a view can be described and reproduced. */
export interface AugmentDraw {
  crop: { left: number; top: number; width: number; height: number };
  hflip: boolean;
  vflip: boolean;
  angle: number;
  zoom: number;
  shiftX: number;
  shiftY: number;
  brightness: number;
  contrast: number;
  sigma: number;
}

function drawCrop(w: number, h: number, minScale: number, rng: Rng): AugmentDraw['crop'] {
  // torchvision RandomResizedCrop: area in [minScale, 1], log-uniform aspect in [3/4, 4/3], 10 tries.
  for (let t = 0; t < 10; t++) {
    const area = w * h * rng.uniform(minScale, 1);
    const ratio = Math.exp(rng.uniform(Math.log(3 / 4), Math.log(4 / 3)));
    const cw = Math.round(Math.sqrt(area * ratio));
    const ch = Math.round(Math.sqrt(area / ratio));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h)
      return { left: rng.int(w - cw + 1), top: rng.int(h - ch + 1), width: cw, height: ch };
  }
  const side = Math.min(w, h);
  return { left: Math.floor((w - side) / 2), top: Math.floor((h - side) / 2), width: side, height: side };
}

export function drawAugment(
  spec: AugmentSpec,
  w: number,
  h: number,
  size: Pick<PreprocessSpec, 'width' | 'height' | 'resizeShorter'>,
  rng: Rng,
): AugmentDraw {
  let crop: AugmentDraw['crop'];
  if (spec.cropScale >= 1) {
    // The evaluation crop, expressed in source pixels.
    const g = cropGeometry(w, h, size);
    const sx = w / g.resizeWidth;
    const sy = h / g.resizeHeight;
    crop = {
      left: Math.round(g.left * sx),
      top: Math.round(g.top * sy),
      width: Math.max(1, Math.round(size.width * sx)),
      height: Math.max(1, Math.round(size.height * sy)),
    };
    crop.width = Math.min(crop.width, w - crop.left);
    crop.height = Math.min(crop.height, h - crop.top);
  } else crop = drawCrop(w, h, spec.cropScale, rng);
  return {
    crop,
    hflip: spec.hflip && rng.next() < 0.5,
    vflip: spec.vflip && rng.next() < 0.5,
    angle: spec.rotate > 0 ? rng.uniform(-spec.rotate, spec.rotate) : 0,
    zoom: spec.scale > 0 ? 1 + rng.uniform(-spec.scale, spec.scale) : 1,
    shiftX: spec.translate > 0 ? rng.uniform(-spec.translate, spec.translate) : 0,
    shiftY: spec.translate > 0 ? rng.uniform(-spec.translate, spec.translate) : 0,
    brightness: spec.brightness > 0 ? rng.uniform(-spec.brightness, spec.brightness) : 0,
    contrast: spec.contrast > 0 ? rng.uniform(-spec.contrast, spec.contrast) : 0,
    sigma: spec.blur > 0 ? rng.uniform(0, spec.blur) : 0,
  };
}

function mirror(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let k = Math.abs(i) % period;
  if (k >= n) k = period - k;
  return k;
}

/** Flips, then rotation/zoom/shift about the centre, sampling bilinearly with mirrored borders. */
function geometric(img: RgbImage, d: AugmentDraw): RgbImage {
  const { width: W, height: H, data } = img;
  if (!d.hflip && !d.vflip && d.angle === 0 && d.zoom === 1 && d.shiftX === 0 && d.shiftY === 0) return img;
  const out = new Uint8Array(W * H * 3);
  const cos = Math.cos((d.angle * Math.PI) / 180) / d.zoom;
  const sin = Math.sin((d.angle * Math.PI) / 180) / d.zoom;
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const shiftX = d.shiftX * W;
  for (let y = 0; y < H; y++) {
    // Inverse map: output pixel → source position (the row's terms computed once per row).
    const dy = y - cy - d.shiftY * H;
    const sinDy = sin * dy;
    const cosDy = cos * dy;
    for (let x = 0; x < W; x++) {
      const dx = x - cx - shiftX;
      let sx = cos * dx + sinDy + cx;
      let sy = -sin * dx + cosDy + cy;
      if (d.hflip) sx = W - 1 - sx;
      if (d.vflip) sy = H - 1 - sy;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const xa = x0 >= 0 && x0 < W ? x0 : mirror(x0, W);
      const xb = x0 + 1 >= 0 && x0 + 1 < W ? x0 + 1 : mirror(x0 + 1, W);
      const ya = y0 >= 0 && y0 < H ? y0 : mirror(y0, H);
      const yb = y0 + 1 >= 0 && y0 + 1 < H ? y0 + 1 : mirror(y0 + 1, H);
      const o = (y * W + x) * 3;
      const a = (ya * W + xa) * 3;
      const b = (ya * W + xb) * 3;
      const c0 = (yb * W + xa) * 3;
      const e = (yb * W + xb) * 3;
      const gx = 1 - fx;
      const gy = 1 - fy;
      for (let c = 0; c < 3; c++)
        out[o + c] = Math.round(
          gy * (gx * (data[a + c] as number) + fx * (data[b + c] as number)) +
            fy * (gx * (data[c0 + c] as number) + fx * (data[e + c] as number)),
        );
    }
  }
  return { width: W, height: H, data: out };
}

function blur(img: RgbImage, sigma: number): RgbImage {
  if (sigma < 0.3) return img;
  const r = Math.ceil(sigma * 3);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const ks = k.reduce((a, b) => a + b, 0);
  const kern = k.map((v) => v / ks);
  const { width: W, height: H } = img;
  const pass = (src: Float32Array, horizontal: boolean): Float32Array => {
    const dst = new Float32Array(src.length);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let i = -r; i <= r; i++) {
            const xx = horizontal ? mirror(x + i, W) : x;
            const yy = horizontal ? y : mirror(y + i, H);
            s += (kern[i + r] as number) * (src[(yy * W + xx) * 3 + c] as number);
          }
          dst[(y * W + x) * 3 + c] = s;
        }
    return dst;
  };
  const v = pass(pass(Float32Array.from(img.data), true), false);
  return { width: W, height: H, data: Uint8Array.from(v, (x) => Math.max(0, Math.min(255, Math.round(x)))) };
}

function isGrey(img: RgbImage): boolean {
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) return false;
  return true;
}

function photometric(img: RgbImage, d: AugmentDraw, noise: number, rng: Rng): RgbImage {
  if (d.brightness === 0 && d.contrast === 0 && noise === 0) return img;
  const src = img.data;
  const out = new Uint8Array(src.length);
  const gain = 1 + d.contrast;
  let sum = 0;
  for (let i = 0; i < src.length; i++) sum += src[i] as number;
  const mean = sum / src.length;
  const offset = d.brightness * 255;
  const level = (value: number, n: number): number =>
    Math.max(0, Math.min(255, Math.round((value - mean) * gain + mean + offset + n)));
  if (noise === 0) {
    // Without noise each output depends on its input value alone: one table of 256 entries.
    const table = new Uint8Array(256);
    for (let v = 0; v < 256; v++) table[v] = level(v, 0);
    for (let i = 0; i < src.length; i++) out[i] = table[src[i] as number] as number;
    return { width: img.width, height: img.height, data: out };
  }
  const grey = isGrey(img);
  for (let p = 0; p < src.length; p += 3) {
    const n0 = rng.normal() * noise;
    out[p] = level(src[p] as number, n0);
    out[p + 1] = level(src[p + 1] as number, grey ? n0 : rng.normal() * noise);
    out[p + 2] = level(src[p + 2] as number, grey ? n0 : rng.normal() * noise);
  }
  return { width: img.width, height: img.height, data: out };
}

/** One augmented view at the model's input size, 8-bit sRGB. Same bytes, spec and seed → same pixels. */
export async function augmentImage(
  bytes: Uint8Array,
  spec: AugmentSpec,
  seed: number,
  size: Pick<PreprocessSpec, 'width' | 'height' | 'resizeShorter'>,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Promise<{ image: RgbImage; draw: AugmentDraw }> {
  const info = await probeImage(bytes, limits);
  const rng = new Rng(seed);
  const draw = drawAugment(spec, info.width, info.height, size, rng);
  let img = await toRgb(
    decoder(bytes, limits)
      .extract(draw.crop)
      .resize(size.width, size.height, { fit: 'fill', kernel: 'linear' }),
    info.format,
  );
  img = geometric(img, draw);
  img = blur(img, draw.sigma);
  img = photometric(img, draw, spec.noise, rng);
  return { image: img, draw };
}

/** N variants as PNG buffers for the preview screen; variant i uses seed + i, as training does. */
export async function augmentPreview(
  bytes: Uint8Array,
  spec: AugmentSpec,
  n: number,
  seed: number,
  size: Pick<PreprocessSpec, 'width' | 'height' | 'resizeShorter'>,
): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const { image } = await augmentImage(bytes, spec, seed + i, size);
    out.push(
      await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return out;
}
