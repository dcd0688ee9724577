import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  crossFittedCalibration,
  expectedCalibrationError,
  fitTemperature,
  nll,
} from '../../src/main/engine/classify/calibration.ts';
import { softmax } from '../../src/main/engine/classify/linalg.ts';
import { Rng } from '../../src/main/engine/random.ts';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b}`);

/** n held-out logits over C classes, the truth ahead by `margin` plus noise; `flip` of the labels wrong. */
function heldOut(n: number, C: number, margin: number, flip: number, seed: number) {
  const rng = new Rng(seed);
  const logits: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % C;
    const l = Array.from({ length: C }, () => rng.normal());
    l[c] = (l[c] as number) + margin + Math.abs(rng.normal());
    logits.push(l);
    y.push(rng.next() < flip ? (c + 1) % C : c);
  }
  return { logits, y };
}

const meanConfidence = (logits: number[][], T: number) =>
  logits.reduce((s, l) => s + Math.max(...softmax(l, T)), 0) / logits.length;

test('a perfectly separated held-out set does not drive the temperature to certainty', () => {
  for (const [n, C] of [
    [72, 3],
    [20, 4],
    [8, 2],
  ] as const) {
    const { logits, y } = heldOut(n, C, 4, 0, n);
    assert.ok(
      logits.every((l, i) => l.indexOf(Math.max(...l)) === y[i]),
      'every prediction right',
    );
    // Plain NLL keeps falling as T → 0: this is what used to put T at the bound.
    assert.ok(nll(logits, y, 0.01) < nll(logits, y, 0.1));
    const T = fitTemperature(logits, y);
    assert.ok(T > 0.1, `n = ${n}: T = ${T}`);
    const m = meanConfidence(logits, T);
    assert.ok(m < (n + 1) / (n + 2), `n = ${n}: mean confidence ${m}`);
    assert.ok(m > 0.7, `n = ${n}: mean confidence ${m} — not flattened either`);
    assert.ok(logits.every((l) => Math.max(...softmax(l, T)) < 1));
  }
});

test('with held-out errors the temperature stays close to the plain-NLL optimum', () => {
  const { logits, y } = heldOut(600, 3, 2, 0.1, 7);
  let best = 1;
  for (let lt = Math.log(0.01); lt < Math.log(100); lt += 0.001)
    if (nll(logits, y, Math.exp(lt)) < nll(logits, y, best)) best = Math.exp(lt);
  const T = fitTemperature(logits, y);
  assert.ok(Math.abs(Math.log(T / best)) < 0.1, `T ${T} vs plain NLL ${best}`);
});

test('ECE on a hand-computed case', () => {
  // top probability → bin:      0.95 → 9 (right), 0.85 → 8 (wrong), 0.8 → 8 (right), 0.6 → 6 (right),
  // 0.55 → 5 (wrong). ECE = (|1 − .95| + 2·|.5 − .825| + |1 − .6| + |0 − .55|) / 5 = 1.65 / 5 = 0.33.
  const probs = [
    [0.95, 0.05],
    [0.85, 0.15],
    [0.2, 0.8],
    [0.6, 0.4],
    [0.55, 0.45],
  ];
  const c = expectedCalibrationError(probs, [0, 1, 1, 0, 1]);
  close(c.ece, 0.33);
  assert.equal(c.n, 5);
  assert.equal(c.bins, 10);
  assert.equal(c.table.length, 10);
  close(c.meanConfidence, 0.75);
  close(c.accuracy, 0.6);
  assert.equal(c.method, 'held-out');
  assert.deepEqual(
    c.table.map((b) => b.count),
    [0, 0, 0, 0, 0, 1, 1, 0, 2, 1],
  );
  const b8 = c.table[8];
  assert.ok(b8 && b8.accuracy === 0.5 && Math.abs((b8.confidence ?? 0) - 0.825) < 1e-12);
  close(b8.lo, 0.8);
  close(b8.hi, 0.9);
  assert.equal(c.table[0]?.confidence, null);
  // A confidence of exactly 1 lands in the last bin; all right and certain is ECE 0.
  const sure = expectedCalibrationError([[1, 0]], [0], { bins: 5 });
  assert.equal(sure.table[4]?.count, 1);
  assert.equal(sure.ece, 0);
});

test('cross-fitted ECE: T from each half scores the other; too few images give none', () => {
  const { logits, y } = heldOut(40, 4, 2, 0.1, 3);
  const r = crossFittedCalibration(logits, y);
  assert.ok(r);
  assert.equal(r.calibration.method, 'cross-fitted');
  assert.equal(r.calibration.n, 40);
  const [ta, tb] = r.temperatures;
  assert.ok(ta > 0.01 && tb > 0.01 && ta !== tb);
  // Halves alternate through the images sorted by class; each half is rescaled by the other's T.
  const byHand = expectedCalibrationError(
    logits.map((l, i) => {
      const rank = y.slice(0, i).filter((c) => c === y[i]).length;
      const classesBefore = [0, 1, 2, 3].filter((c) => c < (y[i] as number));
      const offset = classesBefore.reduce((s, c) => s + y.filter((v) => v === c).length, 0);
      const h = (offset + rank) % 2;
      return softmax(l, h === 0 ? tb : ta);
    }),
    y,
  );
  close(r.calibration.ece, byHand.ece);
  assert.equal(crossFittedCalibration(logits.slice(0, 3), y.slice(0, 3)), null);
});
