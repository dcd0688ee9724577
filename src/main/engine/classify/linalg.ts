// Small dense vector helpers for classifiers on feature vectors (dimensions in the hundreds).

export type Vec = Float32Array | Float64Array;

export function dot(a: Vec, b: Vec): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

export function mean(rows: Vec[], dim: number): Float64Array {
  const m = new Float64Array(dim);
  for (const r of rows) for (let i = 0; i < dim; i++) m[i] = (m[i] as number) + (r[i] as number);
  if (rows.length) for (let i = 0; i < dim; i++) m[i] = (m[i] as number) / rows.length;
  return m;
}

/** SimpleShot's CL2N: subtract the centre, then scale to unit length. */
export function centreNormalize(x: Vec, centre: Vec): Float64Array {
  const out = new Float64Array(x.length);
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const v = (x[i] as number) - (centre[i] as number);
    out[i] = v;
    n += v * v;
  }
  n = Math.sqrt(n) || 1;
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / n;
  return out;
}

/** Softmax of logits / temperature, numerically stable. */
export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, (logits[i] as number) / temperature);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i] as number) / temperature - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / sum;
  return out;
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if ((v[i] as number) > (v[best] as number)) best = i;
  return best;
}

export function toBase64(v: Vec): string {
  const f = Float32Array.from(v);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}

export function fromBase64(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
