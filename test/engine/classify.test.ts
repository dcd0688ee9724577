import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  addPrototypeClass,
  fitLinear,
  fitPrototype,
  predictProba,
  DEFAULT_WEIGHT_DECAY_GRID,
} from '../../src/main/engine/classify/heads.ts';
import { nll, smoothedNll } from '../../src/main/engine/classify/calibration.ts';
import { logits } from '../../src/main/engine/classify/heads.ts';
import { deserializeHead, serializeHead } from '../../src/main/engine/classify/serialize.ts';
import { evaluate } from '../../src/main/engine/evaluate/evaluate.ts';
import {
  holdout,
  leaveOneOut,
  sampleEpisode,
  stratifiedGroupKFold,
} from '../../src/main/engine/evaluate/splits.ts';
import { Rng } from '../../src/main/engine/random.ts';
import { needsShared } from '../helpers/env.ts';
import { bccdFixture, type BccdFixture } from '../helpers/bccd-project.ts';

let fx: BccdFixture | undefined;
before(async () => {
  if (!needsShared) fx = await bccdFixture();
});
after(async () => fx?.close());

/** Two Gaussian blobs per class in 16 dimensions, seeded. */
function blobs(
  perClass: number,
  C: number,
  seed: number,
  spread = 0.6,
): { x: Float64Array[]; y: number[]; classes: string[] } {
  const rng = new Rng(seed);
  const centres = Array.from({ length: C }, () => Float64Array.from({ length: 16 }, () => rng.normal()));
  const x: Float64Array[] = [];
  const y: number[] = [];
  for (let c = 0; c < C; c++)
    for (let i = 0; i < perClass; i++) {
      x.push(Float64Array.from(centres[c] as Float64Array, (v) => v + spread * rng.normal()));
      y.push(c);
    }
  return { x, y, classes: Array.from({ length: C }, (_, c) => `c${c}`) };
}

test('group-aware splits never put one source image on both sides (BCCD)', { skip: needsShared }, () => {
  const { data } = fx as BccdFixture;
  const groups = data.groups as (string | null)[];
  assert.ok(groups.every((g) => g !== null));
  const fold = stratifiedGroupKFold(data.y, groups, 5, 1);
  const foldOfGroup = new Map<string, number>();
  groups.forEach((g, i) => {
    const f = foldOfGroup.get(g);
    if (f === undefined) foldOfGroup.set(g, fold[i] as number);
    else assert.equal(f, fold[i], `group ${g} straddles folds`);
  });
  // Still stratified: each fold holds 14–26 % of every class.
  for (let f = 0; f < 5; f++)
    for (let c = 0; c < data.classes.length; c++) {
      const inFold = data.y.filter((y, i) => y === c && fold[i] === f).length;
      const total = data.y.filter((y) => y === c).length;
      assert.ok(inFold / total > 0.14 && inFold / total < 0.26, `fold ${f} class ${c}: ${inFold}/${total}`);
    }
  const h = holdout(data.y, groups, 0.2, 3);
  const trainGroups = new Set(h.train.map((i) => groups[i]));
  assert.ok(h.test.every((i) => !trainGroups.has(groups[i])));
  const rng = new Rng(5);
  for (let e = 0; e < 50; e++) {
    const ep = sampleEpisode(data.y, groups, 3, { shots: 5 }, rng);
    assert.ok(ep);
    const supportGroups = new Set(ep.support.map((i) => groups[i]));
    assert.ok(
      ep.query.every((i) => !supportGroups.has(groups[i])),
      'a query shares a source image with the support',
    );
  }
  // Ignoring groups, as a naive split would, does let crops of one image straddle: the test can fail.
  const naive = stratifiedGroupKFold(data.y, null, 5, 1);
  const straddles = [...new Set(groups)].some(
    (g) =>
      new Set(groups.map((x, i) => (x === g ? naive[i] : -1)).filter((f) => f !== undefined && f >= 0)).size >
      1,
  );
  assert.ok(straddles);
});

test('leave-one-out leaves out a whole group, or one image without groups', () => {
  assert.deepEqual(leaveOneOut([0, 1, 0, 1], null), [0, 1, 2, 3]);
  assert.deepEqual(leaveOneOut([0, 1, 0, 1], ['a', 'a', 'b', null]), [0, 0, 1, 2]);
});

test(
  'BCCD 3-way 5-shot episodes with SqueezeNet: prototype and linear reach at least 0.93',
  { skip: needsShared },
  () => {
    const { data } = fx as BccdFixture;
    for (const strategy of ['prototype', 'linear'] as const) {
      const r = evaluate(data, {
        strategy,
        protocol: { kind: 'episodes', shots: 5, episodes: 150 },
        seed: 1,
      });
      assert.equal(r.ways, 3);
      assert.equal(r.episodes, 150);
      assert.ok(r.groupAware);
      assert.ok(r.accuracy.mean >= 0.93, `${strategy}: ${r.accuracy.mean}`);
      assert.ok(r.accuracy.ci95[0] < r.accuracy.mean && r.accuracy.ci95[1] > r.accuracy.mean);
      assert.equal(r.accuracy.method, 't');
      assert.equal(
        r.confusion.flat().reduce((a, b) => a + b, 0),
        r.testPredictions,
      );
    }
  },
);

test('evaluation is deterministic for a seed and differs across seeds', { skip: needsShared }, () => {
  const { data } = fx as BccdFixture;
  const a = evaluate(data, {
    strategy: 'prototype',
    protocol: { kind: 'episodes', shots: 2, episodes: 20 },
    seed: 4,
  });
  const b = evaluate(data, {
    strategy: 'prototype',
    protocol: { kind: 'episodes', shots: 2, episodes: 20 },
    seed: 4,
  });
  const c = evaluate(data, {
    strategy: 'prototype',
    protocol: { kind: 'episodes', shots: 2, episodes: 20 },
    seed: 5,
  });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.confusion, c.confusion);
});

test('prototype works from one image per class, and a class is added without refitting', () => {
  const d = blobs(6, 3, 1, 0.3);
  const oneShot = [0, 6, 12];
  const head = fitPrototype({
    x: oneShot.map((i) => d.x[i] as Float64Array),
    y: [0, 1, 2],
    classes: d.classes,
  });
  const queries = d.x.map((_, i) => i).filter((i) => !oneShot.includes(i));
  const acc = queries.filter((i) => {
    const p = predictProba(head, d.x[i] as Float64Array);
    return p.indexOf(Math.max(...p)) === d.y[i];
  }).length;
  assert.ok(acc / queries.length > 0.8);
  const extra = blobs(4, 4, 1, 0.3); // same seed: classes 0–2 are the same blobs, class 3 is new
  const newClass = extra.x.filter((_, i) => extra.y[i] === 3);
  const grown = addPrototypeClass(head, 'c3', newClass.slice(0, 2));
  assert.deepEqual(grown.classes, ['c0', 'c1', 'c2', 'c3']);
  assert.deepEqual(grown.prototypes.slice(0, 3), head.prototypes, 'existing prototypes untouched');
  const p = predictProba(grown, newClass[3] as Float64Array);
  assert.equal(p.indexOf(Math.max(...p)), 3);
  assert.throws(() => addPrototypeClass(grown, 'c3', newClass), /already/);
});

test('linear head: weight decay chosen by inner cross-validation, deterministic, and stored bit for bit', () => {
  const d = blobs(12, 3, 2, 0.9);
  const a = fitLinear(d, { seed: 1 });
  const b = fitLinear(d, { seed: 1 });
  assert.ok(DEFAULT_WEIGHT_DECAY_GRID.includes(a.weightDecay));
  assert.deepEqual(serializeHead(a), serializeHead(b));
  const back = deserializeHead(serializeHead(a));
  assert.equal(back.kind, 'linear');
  assert.deepEqual(deserializeHead(serializeHead(back)), back, 'a stored head reloads identically');
  const fixed = fitLinear(d, { weightDecay: 0.5 });
  assert.equal(fixed.weightDecay, 0.5);
  // With the class-balanced loss a rare class gets more of the decision space.
  const skewed = {
    ...d,
    x: d.x.filter((_, i) => d.y[i] !== 2 || i % 12 < 3),
    y: d.y.filter((y, i) => y !== 2 || i % 12 < 3),
  };
  const plain = fitLinear(skewed, { weightDecay: 1e-2 });
  const balanced = fitLinear(skewed, { weightDecay: 1e-2, classBalanced: true });
  const rare = d.x.filter((_, i) => d.y[i] === 2);
  const meanP = (h: typeof plain) =>
    rare.reduce((s, v) => s + (predictProba(h, v)[2] as number), 0) / rare.length;
  assert.ok(meanP(balanced) > meanP(plain));
});

// The temperature minimises the Laplace-smoothed held-out loss, not plain NLL: on a perfectly separated
// held-out set (both heads get all 30 right here) plain NLL always prefers a colder T, down to certainty.
test('the fitted temperature minimises the smoothed held-out log-loss', () => {
  const train = blobs(10, 3, 3, 1.2);
  const valid = blobs(10, 3, 3, 1.2); // same centres (same seed), new noise draws below
  const rng = new Rng(99);
  valid.x = valid.x.map((v) => v.map((t) => t + 0.5 * rng.normal()));
  for (const fit of [fitPrototype, fitLinear]) {
    const uncalibrated = fit(train, {});
    const calibrated = fit(train, { validation: valid });
    const raw = valid.x.map((v) => logits(uncalibrated, v));
    const T = calibrated.temperature;
    for (const other of [1, T * 1.2, T / 1.2])
      assert.ok(
        smoothedNll(raw, valid.y, T) <= smoothedNll(raw, valid.y, other) + 1e-9,
        `${fit.name}: ${other}`,
      );
    assert.ok(T > 0 && T !== 1);
  }
  // Squared distances span a few units, so T = 1 is far too soft: the fitted T beats it on plain NLL too.
  const proto = fitPrototype(train, {});
  const raw = valid.x.map((v) => logits(proto, v));
  const T = fitPrototype(train, { validation: valid }).temperature;
  assert.ok(nll(raw, valid.y, T) <= nll(raw, valid.y, 1));
});

test('a perfect score never gets a zero-width interval', () => {
  const d = blobs(8, 3, 11, 0.05); // far-apart blobs: every fold is 100 % right
  const data = { x: d.x, y: d.y, classes: d.classes, groups: null };
  for (const protocol of [
    { kind: 'kfold', folds: 4 } as const,
    { kind: 'holdout', testFraction: 0.25 } as const,
  ]) {
    const r = evaluate(data, { strategy: 'prototype', protocol, seed: 2 });
    assert.equal(r.accuracy.mean, 1);
    assert.ok(r.accuracy.ci95[0] < 0.95, `${protocol.kind}: ${r.accuracy.ci95[0]}`);
    assert.ok(r.balancedAccuracy.ci95[0] < 1 && r.macroF1.ci95[0] < 1);
    for (const c of r.perClass)
      assert.ok(c.precision.ci95[0] < 1 && c.recall.ci95[0] < 1 && c.f1.ci95[0] < 1);
    assert.equal(r.accuracy.ci95[1], 1);
  }
});
