import assert from 'node:assert/strict';
import { test } from 'node:test';
import { curveShots, learningCurve } from '../../src/main/engine/evaluate/evaluate.ts';
import type { Dataset } from '../../src/main/engine/classify/dataset.ts';
import { Rng } from '../../src/main/engine/random.ts';

test('the learning curve reaches the images the user has, not 20', () => {
  assert.deepEqual(curveShots(360), [1, 2, 5, 10, 20, 50, 100, 200, 360]);
  assert.deepEqual(curveShots(13), [1, 2, 5, 10, 13]);
  assert.deepEqual(curveShots(11), [1, 2, 5, 10]); // 11 is too close to 10 to be its own point
  assert.deepEqual(curveShots(1), [1]);
  assert.deepEqual(curveShots(0), []);
});

test('learningCurve by default ends at the smallest class less one query', () => {
  // Two well-separated classes of 80 and 100 points in 8 dimensions.
  const rng = new Rng(3);
  const rnd = (): number => rng.next();
  const x: Float32Array[] = [];
  const y: number[] = [];
  for (const [c, n] of [
    [0, 80],
    [1, 100],
  ] as const)
    for (let i = 0; i < n; i++) {
      x.push(Float32Array.from({ length: 8 }, (_, d) => (d === 0 ? c * 4 : 0) + (rnd() - 0.5)));
      y.push(c);
    }
  const data: Dataset = { x, y, classes: ['a', 'b'], groups: null };
  const pts = learningCurve(data, { strategy: 'prototype', seed: 1, episodes: 6 });
  assert.deepEqual(
    pts.map((p) => p.shots),
    [1, 2, 5, 10, 20, 50, 79],
  );
  assert.ok(pts.every((p) => p.accuracy.mean > 0.9));
});
