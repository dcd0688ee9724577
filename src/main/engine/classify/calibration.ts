// Temperature scaling: one scalar T so that softmax(logits / T) is calibrated on held-out predictions.

import { softmax } from './linalg.ts';

export function nll(logits: ArrayLike<number>[], labels: number[], temperature: number): number {
  let s = 0;
  logits.forEach((l, i) => {
    const p = softmax(l, temperature)[labels[i] as number] as number;
    s -= Math.log(Math.max(p, 1e-12));
  });
  return s / Math.max(1, logits.length);
}

/** Minimises held-out NLL over log T in [1/100, 100] by golden-section search. Returns 1 with no data. */
export function fitTemperature(logits: ArrayLike<number>[], labels: number[]): number {
  if (logits.length < 2) return 1;
  let lo = Math.log(0.01);
  let hi = Math.log(100);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = nll(logits, labels, Math.exp(a));
  let fb = nll(logits, labels, Math.exp(b));
  for (let i = 0; i < 60; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = nll(logits, labels, Math.exp(a));
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = nll(logits, labels, Math.exp(b));
    }
  }
  return Math.exp((lo + hi) / 2);
}
