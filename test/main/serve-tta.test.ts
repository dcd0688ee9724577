// The prediction service with test-time augmentation: every request scored over its views, with the
// temperature fitted once at start as batch classification fits it — the same numbers as a batch run
// with the same views.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { classifyBatch } from '../../src/main/services/batch.ts';
import { withProject } from '../../src/main/services/projects.ts';
import { startPredictionService } from '../../src/main/services/serve/server.ts';
import { needsShared, tmpDir } from '../helpers/env.ts';
import { BCCD_CLASSES, servedModel } from '../helpers/served-model.ts';

test(
  'serve --tta flip answers what a batch run with two views gives',
  { skip: needsShared, timeout: 300_000 },
  async () => {
    process.env.FEWSHOT_DATA_DIR = tmpDir('fsl-serve-tta-home-');
    const fx = await servedModel();
    const service = await startPredictionService(fx.file, { modelId: fx.modelId, port: 0, tta: 'flip' });
    try {
      assert.equal(service.model.tta?.kind, 'flip');
      assert.match(
        service.model.tta?.temperatureFrom ?? '',
        /cross-validation over the model's 24 training images/,
      );
      const file = fx.unseen[1] as string;
      const r = await fetch(`${service.url}/v1/predict`, {
        method: 'POST',
        body: fs.readFileSync(file),
        headers: { Authorization: `Bearer ${service.token}` },
      });
      assert.equal(r.status, 200);
      const got = (await r.json()) as { class: string; probabilities: Record<string, number> };
      const folder = tmpDir('fsl-serve-tta-batch-');
      fs.copyFileSync(file, path.join(folder, path.basename(file)));
      const row = await withProject(fx.file, async (p) => {
        const s = await classifyBatch(p, {
          modelId: fx.modelId,
          folder,
          out: path.join(tmpDir(), 'views.csv'),
          minConfidence: 0.5,
          tta: 'flip',
        });
        const run = p.batches.get(s.runId);
        assert.equal(
          (run?.params.tta as { temperature: number }).temperature,
          service.model.tta?.temperature,
        );
        return [...p.batches.iterate(s.runId)][0];
      });
      assert.equal(got.class, row?.predicted);
      BCCD_CLASSES.forEach((c, i) =>
        assert.ok(Math.abs((got.probabilities[c] as number) - (row?.probabilities?.[i] as number)) < 1e-6, c),
      );
    } finally {
      await service.close();
    }
  },
);
