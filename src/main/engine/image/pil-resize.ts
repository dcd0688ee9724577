// Pillow's bilinear resize (Image.resize(size, Image.BILINEAR), as torchvision's Resize uses it on PIL
// images), re-implemented to Pillow's arithmetic: a triangle filter widened by the scale when shrinking
// (antialiasing), coefficients normalised then rounded to 22-bit fixed point, the horizontal pass first
// and its result rounded to 8 bits before the vertical pass. The export uses it to state what a lab's
// PIL pipeline changes in the model's probabilities.

import type { RgbImage } from './decode.ts';

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  bounds: Int32Array; // per output pixel: first input index, count
  kk: Int32Array; // ksize per output pixel
  ksize: number;
}

function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale; // bilinear support 1.0
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1 ? 1 - t : 0;
      pre[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax && ww !== 0 ? (pre[x] as number) / ww : 0;
      // Pillow: (int)(0.5 + w * (1 << PRECISION_BITS)) for w ≥ 0, (int)(-0.5 + …) below.
      kk[xx * ksize + x] = Math.trunc(w * (1 << PRECISION_BITS) + (w < 0 ? -0.5 : 0.5));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(v: number): number {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

/** Pillow's BILINEAR resize of an 8-bit RGB image (whole image, no reducing gap). */
export function pilBilinearResize(img: RgbImage, width: number, height: number): RgbImage {
  const { width: W, height: H, data } = img;
  // Horizontal pass (skipped when the width does not change, as Pillow does).
  let mid = data;
  let midW = W;
  if (width !== W) {
    const c = coefficients(W, width);
    mid = new Uint8Array(width * H * 3);
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < width; xx++) {
        const xmin = c.bounds[xx * 2] as number;
        const xmax = c.bounds[xx * 2 + 1] as number;
        const k = xx * c.ksize;
        for (let ch = 0; ch < 3; ch++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < xmax; x++)
            ss += (data[(y * W + x + xmin) * 3 + ch] as number) * (c.kk[k + x] as number);
          mid[(y * width + xx) * 3 + ch] = clip8(ss);
        }
      }
    }
    midW = width;
  }
  if (height === H) return { data: mid, width: midW, height: H };
  const c = coefficients(H, height);
  const out = new Uint8Array(midW * height * 3);
  for (let yy = 0; yy < height; yy++) {
    const ymin = c.bounds[yy * 2] as number;
    const ymax = c.bounds[yy * 2 + 1] as number;
    const k = yy * c.ksize;
    for (let xx = 0; xx < midW; xx++) {
      for (let ch = 0; ch < 3; ch++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < ymax; y++)
          ss += (mid[((y + ymin) * midW + xx) * 3 + ch] as number) * (c.kk[k + y] as number);
        out[(yy * midW + xx) * 3 + ch] = clip8(ss);
      }
    }
  }
  return { data: out, width: midW, height };
}

/** torchvision's eval transform on a PIL image: Resize(shorter) with BILINEAR, then CenterCrop. */
export function pilEvalCrop(img: RgbImage, shorter: number, cropW: number, cropH: number): RgbImage {
  const { width: W, height: H } = img;
  const [w, h] = W <= H ? [shorter, Math.trunc((shorter * H) / W)] : [Math.trunc((shorter * W) / H), shorter];
  const resized = pilBilinearResize(img, w, h);
  // torchvision: int(round((size - crop) / 2.0)), Python's round halves to even.
  const half = (v: number): number => {
    const f = Math.floor(v);
    const d = v - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  const top = half((h - cropH) / 2);
  const left = half((w - cropW) / 2);
  const out = new Uint8Array(cropW * cropH * 3);
  for (let y = 0; y < cropH; y++)
    out.set(
      resized.data.subarray(((y + top) * w + left) * 3, ((y + top) * w + left + cropW) * 3),
      y * cropW * 3,
    );
  return { data: out, width: cropW, height: cropH };
}
