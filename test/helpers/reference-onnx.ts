// A deliberately plain ONNX interpreter in float64 for the op subset of the backbones (Conv, BatchNorm,
// Relu, MaxPool, Concat, Add, GlobalAveragePool, Flatten, Gemm): the reference ORT is checked against.

import {
  floatAttr,
  intAttr,
  intsAttr,
  tensorFloats,
  type OnnxModel,
} from '../../src/main/engine/onnx/model.ts';

interface T {
  shape: number[];
  data: Float64Array;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function conv(
  x: T,
  w: T,
  b: T | undefined,
  strides: number[],
  pads: number[],
  dil: number[],
  group: number,
): T {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [M, Cg, KH, KW] = w.shape as [number, number, number, number];
  const [sh, sw] = strides as [number, number];
  const [pt, pl, pb, pr] = pads as [number, number, number, number];
  const [dh, dw] = dil as [number, number];
  const OH = Math.floor((H + pt + pb - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + pl + pr - dw * (KW - 1) - 1) / sw) + 1;
  const out = new Float64Array(N * M * OH * OW);
  const Mg = M / group;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      const g = Math.floor(m / Mg);
      const bias = b ? (b.data[m] as number) : 0;
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let acc = bias;
          for (let c = 0; c < Cg; c++) {
            const ic = g * Cg + c;
            const xBase = (n * C + ic) * H;
            const wBase = (m * Cg + c) * KH;
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= H) continue;
              const xRow = (xBase + iy) * W;
              const wRow = (wBase + ky) * KW;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += (x.data[xRow + ix] as number) * (w.data[wRow + kx] as number);
              }
            }
          }
          out[((n * M + m) * OH + oy) * OW + ox] = acc;
        }
    }
  return { shape: [N, M, OH, OW], data: out };
}

function maxPool(x: T, k: number[], strides: number[], pads: number[], ceil: boolean): T {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [kh, kw] = k as [number, number];
  const [sh, sw] = strides as [number, number];
  const [pt, pl, pb, pr] = pads as [number, number, number, number];
  const rnd = ceil ? Math.ceil : Math.floor;
  const OH = rnd((H + pt + pb - kh) / sh) + 1;
  const OW = rnd((W + pl + pr - kw) / sw) + 1;
  const out = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++) {
        let m = -Infinity;
        for (let ky = 0; ky < kh; ky++)
          for (let kx = 0; kx < kw; kx++) {
            const iy = oy * sh - pt + ky;
            const ix = ox * sw - pl + kx;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            m = Math.max(m, x.data[(nc * H + iy) * W + ix] as number);
          }
        out[(nc * OH + oy) * OW + ox] = m;
      }
  return { shape: [N, C, OH, OW], data: out };
}

export function runReference(
  model: OnnxModel,
  inputName: string,
  input: Float32Array,
  shape: number[],
  outputName: string,
): Float64Array {
  const env = new Map<string, T>();
  env.set(inputName, { shape, data: Float64Array.from(input) });
  for (const t of model.graph.initializers) {
    if (t.dataType === 1) env.set(t.name, { shape: t.dims, data: Float64Array.from(tensorFloats(t)) });
  }
  const get = (name: string | undefined): T => {
    const v = name === undefined ? undefined : env.get(name);
    if (!v) throw new Error(`reference: missing tensor ${name}`);
    return v;
  };
  for (const node of model.graph.nodes) {
    const x = get(node.inputs[0]);
    let y: T;
    switch (node.opType) {
      case 'Conv': {
        const w = get(node.inputs[1]);
        y = conv(
          x,
          w,
          node.inputs[2] ? get(node.inputs[2]) : undefined,
          intsAttr(node, 'strides', [1, 1]),
          intsAttr(node, 'pads', [0, 0, 0, 0]),
          intsAttr(node, 'dilations', [1, 1]),
          intAttr(node, 'group', 1),
        );
        break;
      }
      case 'BatchNormalization': {
        const [s, b, m, v] = node.inputs.slice(1).map(get) as [T, T, T, T];
        const eps = floatAttr(node, 'epsilon', 1e-5);
        const C = x.shape[1] as number;
        const hw = size(x.shape.slice(2));
        const data = new Float64Array(x.data.length);
        for (let i = 0; i < data.length; i++) {
          const c = Math.floor(i / hw) % C;
          data[i] =
            (((x.data[i] as number) - (m.data[c] as number)) / Math.sqrt((v.data[c] as number) + eps)) *
              (s.data[c] as number) +
            (b.data[c] as number);
        }
        y = { shape: x.shape, data };
        break;
      }
      case 'Relu':
        y = { shape: x.shape, data: x.data.map((v) => Math.max(0, v)) };
        break;
      case 'MaxPool':
        y = maxPool(
          x,
          intsAttr(node, 'kernel_shape', [1, 1]),
          intsAttr(node, 'strides', [1, 1]),
          intsAttr(node, 'pads', [0, 0, 0, 0]),
          intAttr(node, 'ceil_mode', 0) === 1,
        );
        break;
      case 'Add': {
        const b = get(node.inputs[1]);
        if (b.data.length !== x.data.length) throw new Error('reference: Add broadcasting is not supported');
        y = { shape: x.shape, data: x.data.map((v, i) => v + (b.data[i] as number)) };
        break;
      }
      case 'Concat': {
        if (intAttr(node, 'axis', 0) !== 1) throw new Error('reference: Concat on axis 1 only');
        const parts = node.inputs.map(get);
        const [N, , H, W] = x.shape as [number, number, number, number];
        const C = parts.reduce((a, p) => a + (p.shape[1] as number), 0);
        const data = new Float64Array(N * C * H * W);
        for (let n = 0; n < N; n++) {
          let off = 0;
          for (const p of parts) {
            const pc = p.shape[1] as number;
            data.set(p.data.subarray(n * pc * H * W, (n + 1) * pc * H * W), (n * C + off) * H * W);
            off += pc;
          }
        }
        y = { shape: [N, C, H, W], data };
        break;
      }
      case 'GlobalAveragePool': {
        const [N, C] = x.shape as [number, number];
        const hw = size(x.shape.slice(2));
        const data = new Float64Array(N * C);
        for (let i = 0; i < N * C; i++) {
          let s = 0;
          for (let j = 0; j < hw; j++) s += x.data[i * hw + j] as number;
          data[i] = s / hw;
        }
        y = { shape: [N, C, 1, 1], data };
        break;
      }
      case 'Flatten':
        y = { shape: [x.shape[0] as number, size(x.shape.slice(1))], data: x.data };
        break;
      case 'Gemm': {
        const w = get(node.inputs[1]);
        const b = node.inputs[2] ? get(node.inputs[2]) : undefined;
        if (intAttr(node, 'transB', 0) !== 1) throw new Error('reference: Gemm with transB=1 only');
        const [N, K] = x.shape as [number, number];
        const M = w.shape[0] as number;
        const data = new Float64Array(N * M);
        for (let n = 0; n < N; n++)
          for (let m = 0; m < M; m++) {
            let s = b ? (b.data[m] as number) : 0;
            for (let k = 0; k < K; k++) s += (x.data[n * K + k] as number) * (w.data[m * K + k] as number);
            data[n * M + m] = s;
          }
        y = { shape: [N, M], data };
        break;
      }
      default:
        throw new Error(`reference: op ${node.opType} is not implemented`);
    }
    env.set(node.outputs[0] as string, y);
    if (node.outputs[0] === outputName) return y.data;
  }
  return get(outputName).data;
}
