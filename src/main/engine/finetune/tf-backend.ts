// Picks the TensorFlow.js backend at run time — tfjs-node-gpu when installed and a GPU is usable, then
// tfjs-node, then WebAssembly, then pure JS — and registers the Conv2D gradient as forward convolutions,
// which the WebAssembly backend lacks (Conv2DBackpropFilter) or runs slowly (Conv2DBackpropInput).

import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

// Production mode: no debug checks, and no console banner suggesting an online install.
tf.env().set('PROD', true);

export type TfBackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

let chosen: Promise<TfBackendName> | null = null;

async function tryNode(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return tf.getBackend() === 'tensorflow' || (await tf.setBackend('tensorflow'));
  } catch {
    return false;
  }
}

/** Initialises the best available backend once; `prefer` forces one (tests compare wasm with cpu). */
export function initTf(prefer?: 'cpu' | 'wasm' | 'auto' | 'gpu'): Promise<TfBackendName> {
  if (prefer === 'cpu' || prefer === 'wasm') return useBackend(prefer);
  chosen ??= (async (): Promise<TfBackendName> => {
    registerConvGradient();
    if (process.env.FEWSHOT_TF_BACKEND !== 'wasm') {
      if (await tryNode('@tensorflow/tfjs-node-gpu')) return 'tensorflow-gpu';
      if (prefer !== 'gpu' && (await tryNode('@tensorflow/tfjs-node'))) return 'tensorflow';
    }
    return useBackend('wasm').catch(() => useBackend('cpu'));
  })();
  return chosen;
}

async function useBackend(name: 'cpu' | 'wasm'): Promise<TfBackendName> {
  registerConvGradient();
  if (name === 'wasm')
    setWasmPaths(
      `${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}${path.sep}dist${path.sep}`,
    );
  if (!(await tf.setBackend(name))) throw new Error(`TensorFlow.js backend ${name} is unavailable`);
  await tf.ready();
  return name;
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** What both convolution gradients start from: dy, the saved x and filter, the attributes, the geometry. */
function convGradInputs(
  dyIn: tf.Tensor | tf.Tensor[],
  saved: tf.Tensor[],
  attrs: unknown,
  depthwise: boolean,
) {
  const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
  const a = attrs as ConvAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filter.shape,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    depthwise,
  );
  return { dy: dyIn as tf.Tensor4D, x, filter, a, info };
}

let registered = false;

/**
 * dL/dW of y = conv(x, W) is a forward convolution of x (channels as batch) with dL/dy as the filter and
 * dilation = stride; dL/dx is a forward convolution of the stride-dilated dL/dy with the flipped filter.
 * Both run on every backend's fast forward kernel.
 */
export function registerConvGradient(): void {
  if (registered) return;
  registered = true;
  registerDepthwiseGradient();
  tf.registerGradient({
    kernelName: tf.Conv2D,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dyIn, saved, attrs) => {
      const { dy, x, filter, a, info } = convGradInputs(dyIn, saved, attrs, false);
      if (info.dilationHeight !== 1 || info.dilationWidth !== 1)
        throw new Error('Conv2D gradient: dilated convolutions are not supported');
      // Backends with their own backprop kernels (cpu, tensorflow) keep them; wasm gets the forward form.
      if (tf.getBackend() !== 'wasm') {
        const common = {
          strides: a.strides,
          pad: a.pad,
          dataFormat: 'NHWC',
          dimRoundingMode: a.dimRoundingMode,
        };
        return {
          x: (): tf.Tensor =>
            runKernel(tf.Conv2DBackpropInput, { dy, filter }, { ...common, inputShape: x.shape }),
          filter: (): tf.Tensor =>
            runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...common, filterShape: filter.shape }),
        };
      }
      return {
        x: () => convBackpropInput(dy, filter, x.shape, info),
        filter: () => convBackpropFilter(x, dy, filter.shape, info),
      };
    },
  });
}

/** A backend kernel by name, for the backends that have native conv backprop kernels. */
function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): tf.Tensor {
  return tf.engine().runKernel<tf.Tensor>(name, inputs, attrs as unknown as tf.NamedAttrMap);
}

/**
 * Depthwise convolutions (multiplier 1) on wasm, which has no depthwise backprop kernels: the filter
 * gradient is, per tap, a strided window of x times dy summed over batch and space; the input gradient
 * is a depthwise convolution of the stride-dilated dy with the flipped filter.
 */
function registerDepthwiseGradient(): void {
  tf.registerGradient({
    kernelName: tf.DepthwiseConv2dNative,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dyIn, saved, attrs) => {
      const { dy, x, filter, a, info } = convGradInputs(dyIn, saved, attrs, true);
      if (
        tf.getBackend() !== 'wasm' ||
        filter.shape[3] !== 1 ||
        info.dilationHeight !== 1 ||
        info.dilationWidth !== 1
      ) {
        const common = {
          strides: a.strides,
          pad: a.pad,
          dilations: a.dilations,
          dimRoundingMode: a.dimRoundingMode,
        };
        return {
          x: (): tf.Tensor =>
            runKernel(
              tf.DepthwiseConv2dNativeBackpropInput,
              { dy, filter },
              { ...common, inputShape: x.shape },
            ),
          filter: (): tf.Tensor =>
            runKernel(
              tf.DepthwiseConv2dNativeBackpropFilter,
              { x, dy },
              { ...common, filterShape: filter.shape },
            ),
        };
      }
      return {
        x: () => depthwiseBackpropInput(dy, filter, x.shape, info),
        filter: () => depthwiseBackpropFilter(x, dy, filter.shape, info),
      };
    },
  });
}

export function depthwiseBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  info: ConvInfo,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, c] = filterShape;
    const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
    const { top, left } = info.padInfo;
    const [n, H, W] = x.shape;
    const needH = kh - 1 + (oh - 1) * sh + 1;
    const needW = kw - 1 + (ow - 1) * sw + 1;
    const xp = padOrCrop(x, top, Math.max(0, needH - H - top), left, Math.max(0, needW - W - left));
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++) {
        const win = tf.stridedSlice(
          xp,
          [0, i, j, 0],
          [n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c],
          [1, sh, sw, 1],
        );
        taps.push(tf.sum(tf.mul(win, dy), [0, 1, 2]));
      }
    return tf.reshape<tf.Rank.R4>(tf.stack(taps), [kh, kw, c, 1]);
  });
}

export function depthwiseBackpropInput(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  xShape: [number, number, number, number],
  info: ConvInfo,
): tf.Tensor4D {
  return tf.tidy(() =>
    tf.depthwiseConv2d(
      dilateForTranspose(dy, [filter.shape[0], filter.shape[1]], xShape, info),
      tf.reverse(filter, [0, 1]),
      1,
      'valid',
    ),
  );
}

type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/** Crops (negative) or zero-pads (positive) rows and columns so that a padding can be expressed. */
function padOrCrop(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [n, h, w, c] = t.shape;
  const cropped = tf.slice(
    t,
    [0, Math.max(0, -top), Math.max(0, -left), 0],
    [n, h - Math.max(0, -top) - Math.max(0, -bottom), w - Math.max(0, -left) - Math.max(0, -right), c],
  );
  return tf.pad(cropped, [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ]);
}

export function convBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  info: ConvInfo,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = filterShape;
    const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
    const { top, left } = info.padInfo;
    const H = x.shape[1];
    const W = x.shape[2];
    const bottom = kh - H - top + sh * (oh - 1);
    const right = kw - W - left + sw * (ow - 1);
    const xt = padOrCrop(tf.transpose(x, [3, 1, 2, 0]), top, bottom, left, right); // [Ci, H', W', N]
    const f = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Co]
    const r = tf.conv2d(xt, f, 1, 'valid', 'NHWC', [sh, sw]); // [Ci, KH, KW, Co]
    return tf.transpose<tf.Tensor4D>(r, [1, 2, 0, 3]);
  });
}

/**
 * dy with stride − 1 zeros between its rows and columns, padded so that a stride-1 valid convolution with
 * the flipped kernel gives the input's gradient at the input's size (the transposed convolution).
 */
function dilateForTranspose(
  dy: tf.Tensor4D,
  kernel: [number, number],
  xShape: [number, number, number, number],
  info: ConvInfo,
): tf.Tensor4D {
  const [n, H, W] = xShape;
  const [kh, kw] = kernel;
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  const c = dy.shape[3];
  let d: tf.Tensor4D = dy;
  if (sh > 1 || sw > 1) {
    const e = tf.reshape(dy, [n, oh, 1, ow, 1, c]);
    const p = tf.pad(e, [
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ]);
    d = tf.slice(
      tf.reshape<tf.Rank.R4>(p, [n, oh * sh, ow * sw, c]),
      [0, 0, 0, 0],
      [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c],
    );
  }
  const padT = kh - 1 - top;
  const padL = kw - 1 - left;
  const padB = H - ((oh - 1) * sh + 1) - padT + kh - 1;
  const padR = W - ((ow - 1) * sw + 1) - padL + kw - 1;
  return padOrCrop(d, padT, padB, padL, padR);
}

export function convBackpropInput(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  xShape: [number, number, number, number],
  info: ConvInfo,
): tf.Tensor4D {
  return tf.tidy(() => {
    const w = tf.transpose<tf.Tensor4D>(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [KH, KW, Co, Ci]
    return tf.conv2d(dilateForTranspose(dy, [filter.shape[0], filter.shape[1]], xShape, info), w, 1, 'valid');
  });
}

export { tf };
