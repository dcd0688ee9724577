import assert from 'node:assert/strict';
import { test } from 'node:test';
import { curveOutlook } from '../../src/shared/curve-outlook.ts';
import type { CurvePoint } from '../../src/shared/results.ts';

function pt(shots: number, acc: number, half = 0.02): CurvePoint {
  const e = { mean: acc, ci95: [acc - half, acc + half] as [number, number], method: 't' as const, n: 100 };
  return { shots, episodes: 30, accuracy: e, balancedAccuracy: e, macroF1: e };
}

test('a curve still rising by a log-linear step predicts that step for the next doubling', () => {
  // 70, 76, 82 % at 5, 10, 20: six points per doubling.
  const o = curveOutlook([pt(1, 0.5), pt(5, 0.7), pt(10, 0.76), pt(20, 0.82)]);
  assert.ok(o);
  assert.equal(o.shots, 20);
  assert.ok(Math.abs((o.gainPoints as number) - 6) < 1e-9, String(o.gainPoints));
  assert.match(o.sentence, /doubling to 40 images per class is expected to add about 6 points/);
});

test('a flat curve says it has levelled off, and the gain never exceeds the headroom', () => {
  const flat = curveOutlook([pt(50, 0.99, 0.01), pt(100, 0.992, 0.01), pt(200, 0.991, 0.01)]);
  assert.match(flat?.sentence ?? '', /levelled off at 200 per class/);
  const steep = curveOutlook([pt(5, 0.8), pt(10, 0.9), pt(20, 0.99)]);
  assert.ok((steep?.gainPoints as number) <= 1 + 1e-9);
});

test('one point or none', () => {
  assert.equal(curveOutlook([]), null);
  assert.equal(curveOutlook([pt(5, 0.8)])?.gainPoints, null);
});
