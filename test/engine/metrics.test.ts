import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootstrap, meanInterval, tQuantile975, wilson } from '../../src/main/engine/evaluate/intervals.ts';
import { computeMetrics, confusionMatrix, rocAuc, rocCurve } from '../../src/main/engine/evaluate/metrics.ts';

const close = (a: number, b: number, tol = 1e-4) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b}`);

test('metrics on a hand-computed 3-class case', () => {
  // truth:     A A A A B B C C C C
  // predicted: A A B C B B C C A C
  const t = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
  const p = [0, 0, 1, 2, 1, 1, 2, 2, 0, 2];
  const m = computeMetrics(t, p, ['A', 'B', 'C']);
  assert.deepEqual(m.confusion, [
    [2, 1, 1],
    [0, 2, 0],
    [1, 0, 3],
  ]);
  close(m.accuracy, 7 / 10);
  // recalls: A 2/4, B 2/2, C 3/4 → balanced (0.5 + 1 + 0.75) / 3
  close(m.balancedAccuracy, 0.75);
  // precisions: A 2/3, B 2/3, C 3/4; F1 A = 2·(2/3·1/2)/(2/3+1/2) = 4/7, B = 0.8, C = 0.75
  close(m.perClass[0]?.precision ?? -1, 2 / 3);
  close(m.perClass[0]?.f1 ?? -1, 4 / 7);
  close(m.perClass[1]?.f1 ?? -1, 0.8);
  close(m.perClass[2]?.f1 ?? -1, 0.75);
  close(m.macroF1, (4 / 7 + 0.8 + 0.75) / 3);
  assert.deepEqual(
    m.perClass.map((c) => c.support),
    [4, 2, 4],
  );
});

test('an empty class and a never-predicted class follow zero-division conventions', () => {
  // Class C has no test images and is never predicted: left out of balanced accuracy and macro-F1.
  // Class B is never predicted: precision 0, F1 0, but it counts.
  const m = computeMetrics([0, 0, 1, 1], [0, 0, 0, 0], ['A', 'B', 'C']);
  close(m.accuracy, 0.5);
  close(m.balancedAccuracy, (1 + 0) / 2);
  assert.equal(m.perClass[1]?.precision, 0);
  assert.equal(m.perClass[1]?.f1, 0);
  assert.equal(m.perClass[2]?.support, 0);
  close(m.macroF1, (2 / 3 + 0) / 2); // A: P 0.5, R 1 → F1 2/3
  // A class predicted but absent from the truth counts in macro-F1 with F1 0.
  const n = computeMetrics([0, 0], [0, 2], ['A', 'B', 'C']);
  close(n.macroF1, (2 / 3 + 0) / 2);
});

test('a one-class fold: accuracy is defined, AUC is not', () => {
  const m = computeMetrics(
    [1, 1, 1],
    [1, 0, 1],
    ['A', 'B'],
    [
      [0.2, 0.8],
      [0.6, 0.4],
      [0.1, 0.9],
    ],
  );
  close(m.accuracy, 2 / 3);
  close(m.balancedAccuracy, 2 / 3);
  assert.equal(m.rocAucOvr, null);
  assert.deepEqual(m.perClassAuc, [null, null]);
  assert.deepEqual(confusionMatrix([], [], 2), [
    [0, 0],
    [0, 0],
  ]);
  assert.equal(computeMetrics([], [], ['A', 'B']).accuracy, 0);
});

test('ROC AUC counts ties as one half and the curve ends at (1, 1)', () => {
  assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75);
  assert.equal(rocAuc([0.5, 0.5], [true, false]), 0.5);
  assert.equal(rocAuc([0.2, 0.9], [false, true]), 1);
  const c = rocCurve([0.1, 0.4, 0.35, 0.8], [false, false, true, true]);
  assert.deepEqual(c[0], { fpr: 0, tpr: 0, threshold: Infinity });
  assert.deepEqual([c.at(-1)?.fpr, c.at(-1)?.tpr], [1, 1]);
});

test('intervals: Wilson, Student t and a seeded bootstrap', () => {
  const w = wilson(8, 10);
  close(w.ci95[0], 0.4902, 1e-3);
  close(w.ci95[1], 0.9433, 1e-3);
  assert.deepEqual(wilson(10, 10).ci95[1], 1);
  assert.ok(wilson(10, 10).ci95[0] < 1, 'a perfect score still has a lower bound below 1');
  close(tQuantile975(1), 12.706, 1e-3);
  close(tQuantile975(9), 2.262, 1e-3);
  close(tQuantile975(60), 2.0003, 2e-3);
  const m = meanInterval([0.8, 0.9, 1.0]);
  close(m.mean, 0.9);
  close(m.ci95[0], 0.9 - 4.303 * (0.1 / Math.sqrt(3)), 1e-3);
  assert.equal(m.ci95[1], 1, 'clipped to 1');
  const values = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1];
  const stat = (idx: number[]) => idx.reduce((a, i) => a + (values[i] as number), 0) / idx.length;
  const b1 = bootstrap(values.length, stat, 3);
  const b2 = bootstrap(values.length, stat, 3);
  assert.deepEqual(b1, b2);
  assert.ok(b1.ci95[0] < 0.7 && b1.ci95[1] > 0.7);
});
