import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initTf, tf } from '../../src/main/engine/finetune/tf-backend.ts';

/** Gradients of sum(conv(x, W) · R) w.r.t. x and W on one backend. */
async function grads(
  backend: 'cpu' | 'wasm',
  xs: number[][],
  shapes: {
    x: [number, number, number, number];
    w: [number, number, number, number];
    r: [number, number, number, number];
  },
  stride: number,
  pad: 'same' | 'valid' | number,
): Promise<{ dx: Float32Array; dw: Float32Array }> {
  await initTf(backend);
  const x = tf.tensor4d(xs[0] as number[], shapes.x);
  const w = tf.tensor4d(xs[1] as number[], shapes.w);
  const r = tf.tensor4d(xs[2] as number[], shapes.r);
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r)),
  );
  const [dx, dw] = g([x, w]);
  const out = {
    dx: (await (dx as tf.Tensor).data()) as Float32Array,
    dw: (await (dw as tf.Tensor).data()) as Float32Array,
  };
  tf.dispose([x, w, r, dx, dw]);
  return out;
}

function values(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  });
}

test('Conv2D gradients as forward convolutions on wasm equal the cpu backend', async () => {
  const cases: { h: number; w: number; k: number; stride: number; pad: 'same' | 'valid' | number }[] = [
    { h: 7, w: 7, k: 3, stride: 1, pad: 'same' },
    { h: 8, w: 9, k: 3, stride: 2, pad: 1 },
    { h: 9, w: 9, k: 3, stride: 2, pad: 'valid' },
    { h: 10, w: 8, k: 1, stride: 2, pad: 0 },
    { h: 14, w: 14, k: 7, stride: 2, pad: 3 },
    { h: 6, w: 6, k: 1, stride: 1, pad: 'valid' },
  ];
  for (const c of cases) {
    const ci = 3;
    const co = 4;
    const n = 2;
    const oh =
      c.pad === 'same'
        ? Math.ceil(c.h / c.stride)
        : Math.floor((c.h + 2 * (typeof c.pad === 'number' ? c.pad : 0) - c.k) / c.stride) + 1;
    const ow =
      c.pad === 'same'
        ? Math.ceil(c.w / c.stride)
        : Math.floor((c.w + 2 * (typeof c.pad === 'number' ? c.pad : 0) - c.k) / c.stride) + 1;
    const shapes = {
      x: [n, c.h, c.w, ci] as [number, number, number, number],
      w: [c.k, c.k, ci, co] as [number, number, number, number],
      r: [n, oh, ow, co] as [number, number, number, number],
    };
    const data = [values(n * c.h * c.w * ci, 1), values(c.k * c.k * ci * co, 2), values(n * oh * ow * co, 3)];
    const cpu = await grads('cpu', data, shapes, c.stride, c.pad);
    const wasm = await grads('wasm', data, shapes, c.stride, c.pad);
    for (const key of ['dx', 'dw'] as const) {
      assert.equal(cpu[key].length, wasm[key].length);
      let worst = 0;
      for (let i = 0; i < cpu[key].length; i++)
        worst = Math.max(worst, Math.abs((cpu[key][i] as number) - (wasm[key][i] as number)));
      assert.ok(worst < 1e-4, `${JSON.stringify(c)} ${key}: ${worst}`);
    }
  }
});

test('the Conv2D gradient matches finite differences', async () => {
  await initTf('wasm');
  const x = tf.tensor4d(values(1 * 5 * 5 * 2, 4), [1, 5, 5, 2]);
  const w = values(3 * 3 * 2 * 2, 5);
  const f = (wv: number[]): number =>
    tf.tidy(
      () => tf.sum(tf.square(tf.conv2d(x, tf.tensor4d(wv, [3, 3, 2, 2]), 2, 1))).dataSync()[0] as number,
    );
  const g = tf.grad((wt: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, wt as tf.Tensor4D, 2, 1))))(
    tf.tensor4d(w, [3, 3, 2, 2]),
  );
  const analytic = await g.data();
  for (const i of [0, 7, 19, 35]) {
    const h = 1e-2;
    const up = [...w];
    const down = [...w];
    up[i] = (up[i] as number) + h;
    down[i] = (down[i] as number) - h;
    const numeric = (f(up) - f(down)) / (2 * h);
    assert.ok(
      Math.abs(numeric - (analytic[i] as number)) < 2e-3 * Math.max(1, Math.abs(numeric)),
      `w[${i}]: ${numeric} vs ${analytic[i]}`,
    );
  }
});

test('depthwise convolution gradients on wasm (tap sums and a flipped depthwise convolution) equal the cpu backend', async () => {
  for (const c of [
    { h: 7, w: 7, k: 3, stride: 1, pad: 'same' as const },
    { h: 9, w: 8, k: 3, stride: 2, pad: 'valid' as const },
    { h: 8, w: 8, k: 3, stride: 2, pad: 'same' as const },
  ]) {
    const ch = 5;
    const xs = values(2 * c.h * c.w * ch, 7);
    const ws = values(c.k * c.k * ch, 8);
    const run = async (backend: 'cpu' | 'wasm'): Promise<Float32Array[]> => {
      await initTf(backend);
      const x = tf.tensor4d(xs, [2, c.h, c.w, ch]);
      const w = tf.tensor4d(ws, [c.k, c.k, ch, 1]);
      const y = tf.depthwiseConv2d(x, w, c.stride, c.pad);
      const r = tf.tensor(values(y.size, 9), y.shape);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)),
      )([x, w]);
      return [
        (await (dx as tf.Tensor).data()) as Float32Array,
        (await (dw as tf.Tensor).data()) as Float32Array,
      ];
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    for (let k = 0; k < 2; k++) {
      let worst = 0;
      for (let i = 0; i < (cpu[k] as Float32Array).length; i++)
        worst = Math.max(
          worst,
          Math.abs(((cpu[k] as Float32Array)[i] as number) - ((wasm[k] as Float32Array)[i] as number)),
        );
      assert.ok(worst < 1e-4, `${JSON.stringify(c)} ${k ? 'dW' : 'dx'}: ${worst}`);
    }
  }
});
