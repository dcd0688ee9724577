// The fine-tuning run's one count of work, from which the Train screen's ETA comes: with the pace the
// screen measured, caching and steps weigh what they were measured to take; without one, decoding
// weighs what it costs against a small backbone's steps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { RunMeter } from '../../src/main/engine/finetune/train-finetune.ts';
import { DEFAULT_AUGMENT } from '../../src/shared/augment.ts';
import { needsShared, SQUEEZENET, tmpDir, useModelDirs } from '../helpers/env.ts';

type Overall = { done: number; total: number };

/** One planned run driven through its caching and steps; the overall count after each phase. */
function drive(
  meter: RunMeter,
  reports: Overall[],
  run: { train: number; validation: number; perEpoch: number; epochs: number },
) {
  meter.plan([run]);
  const r = meter.run(
    run.train,
    run.validation,
    run.perEpoch,
    { strategy: 'full', epochs: run.epochs, augment: DEFAULT_AUGMENT },
    (p) => ({
      phase: 'training',
      message: `epoch ${p.epoch}/${p.epochs}`,
    }),
  );
  const views = run.train * 4 + run.validation;
  r.onPrefixProgress(views, views);
  const afterCaching = reports.at(-1) as Overall;
  const steps = Math.ceil((run.perEpoch * run.epochs) / 16);
  r.onProgress({ step: steps, steps, epoch: run.epochs, epochs: run.epochs, loss: 0.1, epochEnd: true });
  return { afterCaching, atEnd: reports.at(-1) as Overall };
}

test(
  'with a measured pace, the count is in its seconds: caching and steps weigh what was measured',
  {
    skip: needsShared,
  },
  () => {
    useModelDirs(tmpDir('fsl-meter-models-'));
    const reports: Overall[] = [];
    const pace = { stepSeconds: 0.3, prefixSecondsPerImage: 0.005, batchSize: 16 };
    const meter = new RunMeter(
      resolveBackbone(SQUEEZENET),
      'full',
      (p) => p.overall && reports.push(p.overall),
      pace,
    );
    const { afterCaching, atEnd } = drive(meter, reports, {
      train: 900,
      validation: 240,
      perEpoch: 960,
      epochs: 3,
    });
    const caching = (900 * 4 + 240) * 0.005; // 19.2 s
    // 180 steps, and each epoch scores the 240 validation images: 15 batches at a third of a step.
    const training = ((3 * 960) / 16) * 0.3 + ((3 * 240) / 16 / 3) * 0.3; // 54 s + 4.5 s
    assert.ok(Math.abs(afterCaching.done - caching) < 1e-9, `caching counts ${afterCaching.done} s`);
    assert.ok(
      Math.abs(afterCaching.total - (caching + training)) < 1e-9,
      `the run counts ${afterCaching.total} s`,
    );
    assert.ok(Math.abs(atEnd.done - atEnd.total) < 1e-9, 'the last step completes the count');
  },
);

test(
  'without a pace, decoding weighs against a small backbone’s steps as measured on a CPU',
  {
    skip: needsShared,
  },
  () => {
    useModelDirs(tmpDir('fsl-meter-models-'));
    const reports: Overall[] = [];
    const meter = new RunMeter(
      resolveBackbone(SQUEEZENET),
      'full',
      (p) => p.overall && reports.push(p.overall),
    );
    const { afterCaching } = drive(meter, reports, { train: 100, validation: 0, perEpoch: 100, epochs: 10 });
    // `npm run bench:finetune`: full SqueezeNet on 100 images, 4 views, 10 epochs spends ~8 % of its time
    // caching (decoding and augmenting); a third of a walk-through's 85 s with 3 epochs. Counted as a tenth
    // of a forward pass, decoding would be 1 % of the count, and the ETA during caching 5–10 times too long.
    const share = afterCaching.done / afterCaching.total;
    assert.ok(share > 0.05 && share < 0.25, `caching is ${(100 * share).toFixed(1)} % of the count`);
  },
);
