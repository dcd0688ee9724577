// Classifier heads on frozen backbone features, both on SimpleShot's centred, L2-normalised features:
//  - prototype: nearest class mean (ProtoNet logits −‖q − p_c‖²); works from one image per class, and a
//    class can be added later without refitting the others;
//  - linear: multinomial logistic regression with weight decay (chosen by inner cross-validation when the
//    data allows) and an optional class-balanced loss.
// Both carry a temperature fitted on held-out logits, so probabilities (and an "uncertain" threshold)
// mean something.

import { FewShotError } from '../../../shared/errors.ts';
import { Rng } from '../random.ts';
import { fitTemperature } from './calibration.ts';
import { minimize } from './lbfgs.ts';
import { centreNormalize, mean, softmax, type Vec } from './linalg.ts';

/** Iterations of the optimiser for a linear head (it stops earlier when converged). */
export const LINEAR_MAX_ITERATIONS = 150;

export type { Strategy } from '../../../shared/results.ts';
import type { Strategy } from '../../../shared/results.ts';

export interface PrototypeHead {
  kind: 'prototype';
  classes: string[];
  centre: Float64Array;
  prototypes: Float64Array[];
  temperature: number;
}

export interface LinearHead {
  kind: 'linear';
  classes: string[];
  centre: Float64Array;
  /** C × D, row-major. */
  weights: Float64Array;
  bias: Float64Array;
  weightDecay: number;
  classBalanced: boolean;
  temperature: number;
}

export type Head = PrototypeHead | LinearHead;

export interface LabelledSet {
  x: Vec[];
  y: number[];
  classes: string[];
}

export interface FitOptions {
  /** Held-out data to fit the temperature on; without it, out-of-fold predictions on the training data are used. */
  validation?: { x: Vec[]; y: number[] };
  seed?: number;
  /** linear: a fixed weight decay, skipping the inner cross-validation. */
  weightDecay?: number;
  classBalanced?: boolean;
  /** linear: the grid searched by inner cross-validation. */
  weightDecayGrid?: number[];
  /** linear: progress of the final fit, iteration by iteration. */
  onIteration?: (iteration: number, loss: number) => void;
}

/** Default temperature for prototype logits when nothing held out can calibrate it. */
const PROTOTYPE_DEFAULT_T = 0.1;

function checkSet(set: LabelledSet): void {
  if (set.x.length === 0) throw new FewShotError('INVALID_INPUT', 'No training images.');
  if (set.x.length !== set.y.length)
    throw new FewShotError('INVALID_INPUT', 'Features and labels differ in length.');
  const seen = new Set(set.y);
  if (seen.size < 2) throw new FewShotError('INVALID_INPUT', 'At least two classes with images are needed.');
}

export function logits(head: Head, x: Vec): Float64Array {
  const q = centreNormalize(x, head.centre);
  const C = head.classes.length;
  const out = new Float64Array(C);
  if (head.kind === 'prototype') {
    head.prototypes.forEach((p, c) => {
      let d = 0;
      for (let i = 0; i < q.length; i++) {
        const t = (q[i] as number) - (p[i] as number);
        d += t * t;
      }
      out[c] = -d;
    });
  } else {
    const D = q.length;
    for (let c = 0; c < C; c++) {
      let s = head.bias[c] as number;
      const off = c * D;
      for (let i = 0; i < D; i++) s += (head.weights[off + i] as number) * (q[i] as number);
      out[c] = s;
    }
  }
  return out;
}

export function predictProba(head: Head, x: Vec): Float64Array {
  return softmax(logits(head, x), head.temperature);
}

// ---------- prototype ----------

function prototypesFrom(xs: Float64Array[], y: number[], C: number, dim: number): Float64Array[] {
  const protos = Array.from({ length: C }, () => new Float64Array(dim));
  const counts = new Array<number>(C).fill(0);
  xs.forEach((v, i) => {
    const c = y[i] as number;
    counts[c] = (counts[c] as number) + 1;
    const p = protos[c] as Float64Array;
    for (let k = 0; k < dim; k++) p[k] = (p[k] as number) + (v[k] as number);
  });
  protos.forEach((p, c) => {
    const n = counts[c] as number;
    if (n > 0) for (let k = 0; k < dim; k++) p[k] = (p[k] as number) / n;
    else p.fill(Number.NaN); // a class with no support can never be predicted
  });
  return protos;
}

export function fitPrototype(set: LabelledSet, options: FitOptions = {}): PrototypeHead {
  checkSet(set);
  const dim = (set.x[0] as Vec).length;
  const centre = mean(set.x, dim);
  const xs = set.x.map((v) => centreNormalize(v, centre));
  const C = set.classes.length;
  const head: PrototypeHead = {
    kind: 'prototype',
    classes: [...set.classes],
    centre,
    prototypes: prototypesFrom(xs, set.y, C, dim),
    temperature: PROTOTYPE_DEFAULT_T,
  };
  for (const p of head.prototypes) if (p.some(Number.isNaN)) p.fill(1e3); // far from every unit vector
  if (options.validation && options.validation.x.length >= 2) {
    head.temperature = fitTemperature(
      options.validation.x.map((v) => logits({ ...head, temperature: 1 }, v)),
      options.validation.y,
    );
  } else {
    // Leave-one-out on the support: each image against prototypes computed without it.
    const counts = new Array<number>(C).fill(0);
    for (const c of set.y) counts[c] = (counts[c] as number) + 1;
    const held: Float64Array[] = [];
    const heldY: number[] = [];
    xs.forEach((q, i) => {
      const c = set.y[i] as number;
      if ((counts[c] as number) < 2) return;
      const out = new Float64Array(C);
      for (let k = 0; k < C; k++) {
        const p = head.prototypes[k] as Float64Array;
        const n = counts[k] as number;
        let d = 0;
        for (let j = 0; j < dim; j++) {
          const pj = k === c ? ((p[j] as number) * n - (q[j] as number)) / (n - 1) : (p[j] as number);
          const t = (q[j] as number) - pj;
          d += t * t;
        }
        out[k] = -d;
      }
      held.push(out);
      heldY.push(c);
    });
    if (held.length >= 2 && new Set(heldY).size >= 2) head.temperature = fitTemperature(held, heldY);
  }
  return head;
}

/** Adds a class to a prototype head without touching the others (the centre stays as fitted). */
export function addPrototypeClass(head: PrototypeHead, name: string, examples: Vec[]): PrototypeHead {
  if (head.classes.includes(name))
    throw new FewShotError('ALREADY_EXISTS', `Class "${name}" is already in the model.`);
  if (examples.length === 0) throw new FewShotError('INVALID_INPUT', 'A new class needs at least one image.');
  const xs = examples.map((v) => centreNormalize(v, head.centre));
  const [proto] = prototypesFrom(
    xs,
    xs.map(() => 0),
    1,
    head.centre.length,
  );
  return {
    ...head,
    classes: [...head.classes, name],
    prototypes: [...head.prototypes, proto as Float64Array],
  };
}

// ---------- linear ----------

interface LinearFit {
  weights: Float64Array;
  bias: Float64Array;
}

function trainLinear(
  xs: Float64Array[],
  y: number[],
  C: number,
  lambda: number,
  balanced: boolean,
  onIteration?: (iteration: number, loss: number) => void,
): LinearFit {
  const D = (xs[0] as Float64Array).length;
  const N = xs.length;
  const counts = new Array<number>(C).fill(0);
  for (const c of y) counts[c] = (counts[c] as number) + 1;
  const present = counts.filter((n) => n > 0).length;
  const w = y.map((c) => (balanced ? N / (present * (counts[c] as number)) : 1));
  const wSum = w.reduce((a, b) => a + b, 0);
  const nParams = C * D + C;
  const z = new Float64Array(C);
  const objective = (theta: Float64Array, grad: Float64Array): number => {
    grad.fill(0);
    let loss = 0;
    for (let i = 0; i < N; i++) {
      const x = xs[i] as Float64Array;
      let max = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = theta[C * D + c] as number;
        const off = c * D;
        for (let k = 0; k < D; k++) s += (theta[off + k] as number) * (x[k] as number);
        z[c] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp((z[c] as number) - max);
      const lse = max + Math.log(sum);
      const yi = y[i] as number;
      const wi = (w[i] as number) / wSum;
      loss += wi * (lse - (z[yi] as number));
      for (let c = 0; c < C; c++) {
        const g = wi * (Math.exp((z[c] as number) - lse) - (c === yi ? 1 : 0));
        const off = c * D;
        for (let k = 0; k < D; k++) grad[off + k] = (grad[off + k] as number) + g * (x[k] as number);
        grad[C * D + c] = (grad[C * D + c] as number) + g;
      }
    }
    for (let k = 0; k < C * D; k++) {
      const t = theta[k] as number;
      loss += 0.5 * lambda * t * t;
      grad[k] = (grad[k] as number) + lambda * t;
    }
    return loss;
  };
  const { x } = minimize(objective, new Float64Array(nParams), {
    maxIterations: LINEAR_MAX_ITERATIONS,
    gradientTolerance: 1e-5,
    ...(onIteration ? { onIteration } : {}),
  });
  return { weights: x.slice(0, C * D), bias: x.slice(C * D) };
}

function linearLogits(fit: LinearFit, q: Float64Array, C: number): Float64Array {
  const D = q.length;
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = fit.bias[c] as number;
    for (let k = 0; k < D; k++) s += (fit.weights[c * D + k] as number) * (q[k] as number);
    out[c] = s;
  }
  return out;
}

/** Stratified fold assignment for inner cross-validation (no groups: it only tunes hyper-parameters). */
function innerFolds(y: number[], k: number, rng: Rng): number[] {
  const fold = new Array<number>(y.length).fill(0);
  const byClass = new Map<number, number[]>();
  y.forEach((c, i) => byClass.set(c, [...(byClass.get(c) ?? []), i]));
  let offset = 0;
  for (const idx of [...byClass.keys()].sort((a, b) => a - b).map((c) => byClass.get(c) as number[])) {
    rng.shuffle(idx);
    idx.forEach((i, j) => (fold[i] = (j + offset) % k));
    offset += idx.length;
  }
  return fold;
}

export const DEFAULT_WEIGHT_DECAY_GRID = [1e-4, 1e-3, 1e-2, 1e-1];
const DEFAULT_WEIGHT_DECAY = 1e-3;

export function fitLinear(set: LabelledSet, options: FitOptions = {}): LinearHead {
  checkSet(set);
  const C = set.classes.length;
  const dim = (set.x[0] as Vec).length;
  const centre = mean(set.x, dim);
  const xs = set.x.map((v) => centreNormalize(v, centre));
  const balanced = options.classBalanced ?? false;
  const counts = new Array<number>(C).fill(0);
  for (const c of set.y) counts[c] = (counts[c] as number) + 1;
  const minCount = Math.min(...counts.filter((n) => n > 0));
  const k = Math.min(5, minCount);
  let lambda = options.weightDecay ?? DEFAULT_WEIGHT_DECAY;
  let oof: { logits: Float64Array[]; y: number[] } | null = null;

  // Inner cross-validation needs at least two images of every class on each side of a fold.
  if (k >= 2) {
    const grid =
      options.weightDecay !== undefined
        ? [options.weightDecay]
        : (options.weightDecayGrid ?? DEFAULT_WEIGHT_DECAY_GRID);
    const folds = innerFolds(set.y, Math.min(k, 3), new Rng((options.seed ?? 0) + 7919));
    const nFolds = Math.max(...folds) + 1;
    let best: { acc: number; nll: number; lambda: number; logits: Float64Array[]; y: number[] } | null = null;
    for (const lam of grid) {
      const oofLogits: Float64Array[] = [];
      const oofY: number[] = [];
      let correct = 0;
      let nll = 0;
      for (let f = 0; f < nFolds; f++) {
        const tr = xs.filter((_, i) => folds[i] !== f);
        const trY = set.y.filter((_, i) => folds[i] !== f);
        const fit = trainLinear(tr, trY, C, lam, balanced);
        xs.forEach((q, i) => {
          if (folds[i] !== f) return;
          const l = linearLogits(fit, q, C);
          const p = softmax(l);
          const yi = set.y[i] as number;
          if (p.indexOf(Math.max(...p)) === yi) correct++;
          nll -= Math.log(Math.max(p[yi] as number, 1e-12));
          oofLogits.push(l);
          oofY.push(yi);
        });
      }
      const acc = correct / xs.length;
      nll /= xs.length;
      // Higher accuracy wins; near-ties go to the lower log-loss.
      if (!best || acc > best.acc + 1e-9 || (Math.abs(acc - best.acc) <= 1e-9 && nll < best.nll)) {
        best = { acc, nll, lambda: lam, logits: oofLogits, y: oofY };
      }
    }
    if (best) {
      lambda = best.lambda;
      oof = { logits: best.logits, y: best.y };
    }
  }
  const fit = trainLinear(xs, set.y, C, lambda, balanced, options.onIteration);
  const head: LinearHead = {
    kind: 'linear',
    classes: [...set.classes],
    centre,
    weights: fit.weights,
    bias: fit.bias,
    weightDecay: lambda,
    classBalanced: balanced,
    temperature: 1,
  };
  if (options.validation && options.validation.x.length >= 2) {
    head.temperature = fitTemperature(
      options.validation.x.map((v) => logits({ ...head, temperature: 1 }, v)),
      options.validation.y,
    );
  } else if (oof && oof.logits.length >= 2) head.temperature = fitTemperature(oof.logits, oof.y);
  return head;
}

export function fitHead(strategy: Strategy, set: LabelledSet, options: FitOptions = {}): Head {
  return strategy === 'prototype' ? fitPrototype(set, options) : fitLinear(set, options);
}
