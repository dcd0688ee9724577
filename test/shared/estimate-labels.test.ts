import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  calibrationLabel,
  estimateLabel,
  protocolLabel,
  reviewSourceLabel,
} from '../../src/shared/estimate-labels.ts';
import type { ModelEstimate } from '../../src/shared/results.ts';

test('every protocol names itself, with the number of test predictions when known', () => {
  assert.equal(protocolLabel({ kind: 'kfold', folds: 5 }, 361), '5-fold CV, n = 361');
  assert.equal(protocolLabel({ kind: 'holdout', testFraction: 0.2 }, 72), 'hold-out, n = 72');
  assert.equal(protocolLabel({ kind: 'loo' }, 40), 'leave-one-out CV, n = 40');
  assert.equal(
    protocolLabel({ kind: 'episodes', shots: 5, episodes: 50, ways: 3 }, 750),
    '50 × 3-way 5-shot episodes, n = 750',
  );
  assert.equal(protocolLabel({ kind: 'kfold', folds: 3 }), '3-fold CV');
});

test('an estimate stored before labels existed still gets one from its protocol', () => {
  const e = { mean: 0.9, ci95: [0.8, 0.95] as [number, number], method: 'wilson' as const, n: 72 };
  const old: ModelEstimate = {
    accuracy: e,
    balancedAccuracy: e,
    macroF1: e,
    protocol: { kind: 'holdout', testFraction: 0.2 },
  };
  assert.equal(estimateLabel(old), 'hold-out');
  assert.equal(estimateLabel({ ...old, n: 72 }), 'hold-out, n = 72');
  assert.equal(estimateLabel({ ...old, label: 'stored label' }), 'stored label');
  assert.equal(
    calibrationLabel({
      ece: 0.031,
      n: 72,
      bins: 10,
      meanConfidence: 0.95,
      accuracy: 0.97,
      table: [],
      method: 'cross-fitted',
    }),
    'ECE 3.1 % (10 bins, n = 72, cross-fitted halves of the hold-out, mean confidence 95.0 %)',
  );
});

test('a Review says whether it shows the model itself on its validation split or models fitted afresh', () => {
  const own = reviewSourceLabel({ source: 'model-validation', testPredictions: 226, groupAware: true }, true);
  assert.match(own, /model's own predictions on its validation split \(226 images, groups kept whole\)/);
  assert.match(own, /accuracy may read slightly high/);
  assert.match(own, /cross-fitted/);
  assert.doesNotMatch(
    reviewSourceLabel({ source: 'model-validation', testPredictions: 9, groupAware: false }, true),
    /groups/,
    'no groups claimed where the project has none',
  );
  assert.match(reviewSourceLabel({ testPredictions: 226, groupAware: true }, true), /fine-tuning afresh/);
  assert.equal(reviewSourceLabel(undefined, true), '', 'nothing claimed before the evaluation is there');
  assert.match(reviewSourceLabel(undefined, false), /cross-validation/);
});
