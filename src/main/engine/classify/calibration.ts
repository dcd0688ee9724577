// Temperature scaling: one scalar T so that softmax(logits / T) is calibrated on held-out predictions;
// and the expected calibration error (ECE) that says how well it worked, measured on predictions that
// neither trained the model nor fitted T.

import type { Calibration, CalibrationBin } from '../../../shared/results.ts';
import { argmax, softmax } from './linalg.ts';

/** Plain held-out negative log-likelihood of softmax(logits / T). */
export function nll(logits: ArrayLike<number>[], labels: number[], temperature: number): number {
  let s = 0;
  logits.forEach((l, i) => {
    const p = softmax(l, temperature)[labels[i] as number] as number;
    s -= Math.log(Math.max(p, 1e-12));
  });
  return s / Math.max(1, logits.length);
}

function logSumExp(l: ArrayLike<number>, temperature: number, skip = -1): number {
  let max = -Infinity;
  for (let k = 0; k < l.length; k++) if (k !== skip) max = Math.max(max, (l[k] as number) / temperature);
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let k = 0; k < l.length; k++) if (k !== skip) s += Math.exp((l[k] as number) / temperature - max);
  return max + Math.log(s);
}

/**
 * The loss T is fitted on: cross-entropy against targets smoothed by Laplace's rule of succession. Each
 * held-out truth gets q = (n + 1) / (n + 2) and "some other class" the remaining 1 / (n + 2), with n the
 * number of held-out predictions: after n right out of n, Laplace's estimate that the next one is right
 * is (n + 1) / (n + 2), not 1. Plain NLL on a perfectly separated held-out set keeps falling as T → 0 (it
 * used to stop at the bound, T = 0.01, and every confidence read 1.000000); this loss has its minimum
 * where the confidences are about q. With held-out errors it differs from NLL by O(1 / n). The remainder
 * goes to the other classes as one event, not split evenly, so a class the model can never predict (no
 * training images in a fold) does not drag T upwards.
 */
export function smoothedNll(logits: ArrayLike<number>[], labels: number[], temperature: number): number {
  const n = logits.length;
  const q = (n + 1) / (n + 2);
  let s = 0;
  logits.forEach((l, i) => {
    const y = labels[i] as number;
    const lse = logSumExp(l, temperature);
    const logTruth = (l[y] as number) / temperature - lse;
    const others = logSumExp(l, temperature, y);
    const logOther = others === -Infinity ? 0 : others - lse; // one class: no "other" term
    s -= q * logTruth + (1 - q) * logOther;
  });
  return s / Math.max(1, n);
}

/**
 * Minimises the smoothed held-out loss (see smoothedNll) over log T in [1/100, 100] by golden-section
 * search. Returns 1 with fewer than two predictions.
 */
export function fitTemperature(logits: ArrayLike<number>[], labels: number[]): number {
  if (logits.length < 2) return 1;
  return goldenLogT((logT) => smoothedNll(logits, labels, Math.exp(logT)));
}

/** Golden-section search of log T over [1/100, 100]; returns T. */
function goldenLogT(f: (logT: number) => number): number {
  let lo = Math.log(0.01);
  let hi = Math.log(100);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let i = 0; i < 60; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = f(a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = f(b);
    }
  }
  return Math.exp((lo + hi) / 2);
}

/** Test-time augmentation: the mean over views of softmax(logits / T). */
export function averageSoftmax(views: ArrayLike<number>[], temperature: number): Float64Array {
  const out = new Float64Array(views[0]?.length ?? 0);
  for (const z of views) {
    const p = softmax(z, temperature);
    for (let c = 0; c < out.length; c++) out[c] = (out[c] as number) + (p[c] as number) / views.length;
  }
  return out;
}

/** smoothedNll for view-averaged probabilities (one view: the same value). */
export function smoothedNllViews(
  views: ArrayLike<number>[][],
  labels: number[],
  temperature: number,
): number {
  const n = views.length;
  const q = (n + 1) / (n + 2);
  let s = 0;
  views.forEach((v, i) => {
    const p = averageSoftmax(v, temperature);
    const py = p[labels[i] as number] as number;
    s -=
      q * Math.log(Math.max(py, 1e-300)) + (p.length > 1 ? (1 - q) * Math.log(Math.max(1 - py, 1e-300)) : 0);
  });
  return s / Math.max(1, n);
}

/** The temperature for view-averaged probabilities, fitted on held-out raw logits of every view. */
export function fitTemperatureViews(views: ArrayLike<number>[][], labels: number[]): number {
  if (views.length < 2) return 1;
  return goldenLogT((logT) => smoothedNllViews(views, labels, Math.exp(logT)));
}

/** Bins used for the ECE unless told otherwise. */
export const ECE_BINS = 10;

/**
 * ECE = Σ_b (n_b / n) · |accuracy_b − mean confidence_b| over equal-width bins of the top probability
 * ([0, 0.1), …, [0.9, 1]); every bin is listed, empty ones with null figures. `method` says where the
 * predictions came from (see Calibration).
 */
export function expectedCalibrationError(
  probabilities: ArrayLike<number>[],
  labels: number[],
  options: { bins?: number; method?: Calibration['method'] } = {},
): Calibration {
  const B = options.bins ?? ECE_BINS;
  const count = new Array<number>(B).fill(0);
  const conf = new Array<number>(B).fill(0);
  const right = new Array<number>(B).fill(0);
  probabilities.forEach((p, i) => {
    const k = argmax(p);
    const c = p[k] as number;
    const b = Math.min(B - 1, Math.max(0, Math.floor(c * B)));
    count[b] = (count[b] as number) + 1;
    conf[b] = (conf[b] as number) + c;
    if (k === labels[i]) right[b] = (right[b] as number) + 1;
  });
  const n = probabilities.length;
  let ece = 0;
  const bins: CalibrationBin[] = count.map((m, b) => {
    const confidence = m ? (conf[b] as number) / m : null;
    const accuracy = m ? (right[b] as number) / m : null;
    if (m) ece += (m / n) * Math.abs((accuracy as number) - (confidence as number));
    return { lo: b / B, hi: (b + 1) / B, count: m, confidence, accuracy };
  });
  const sum = (v: number[]) => v.reduce((a, x) => a + x, 0);
  return {
    ece,
    n,
    bins: B,
    meanConfidence: n ? sum(conf) / n : 0,
    accuracy: n ? sum(right) / n : 0,
    table: bins,
    method: options.method ?? 'held-out',
  };
}

/**
 * ECE when one held-out set has to both fit T and be scored: it is split in two halves (stratified,
 * alternating within each class), T is fitted on one half and the other is scored, then the other way
 * round; the ECE is over the pooled, recalibrated predictions. Null with fewer than two per half.
 */
export function crossFittedCalibration(
  logits: ArrayLike<number>[],
  labels: number[],
  options: { bins?: number } = {},
): { calibration: Calibration; temperatures: [number, number] } | null {
  const half: number[] = [];
  let toggle = 0;
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => byClass.set(y, [...(byClass.get(y) ?? []), i]));
  for (const c of [...byClass.keys()].sort((a, b) => a - b))
    for (const i of byClass.get(c) as number[]) half[i] = toggle++ % 2;
  const sides = [0, 1].map((h) => labels.map((_, i) => i).filter((i) => half[i] === h));
  if (sides.some((s) => s.length < 2)) return null;
  const temperatures = sides.map((s) =>
    fitTemperature(
      s.map((i) => logits[i] as ArrayLike<number>),
      s.map((i) => labels[i] as number),
    ),
  ) as [number, number];
  const probs = logits.map((l, i) => softmax(l, temperatures[1 - (half[i] as number)] as number));
  return {
    calibration: expectedCalibrationError(probs, labels, { ...options, method: 'cross-fitted' }),
    temperatures,
  };
}
