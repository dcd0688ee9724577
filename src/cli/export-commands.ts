// `fewshot export | import-model | report`: the model bundle and the PDF reports.

import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../shared/errors.ts';
import { Backbone } from '../main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../main/engine/backbones/registry.ts';
import { exportModel, findModel, importModelBundle } from '../main/engine/export/bundle.ts';
import { loadDataset } from '../main/engine/classify/dataset.ts';
import { datasetWarnings } from '../main/engine/dataset-warnings.ts';
import { renderBatchReport } from '../main/engine/report/batch-report.ts';
import { renderEvaluationReport } from '../main/engine/report/evaluation-report.ts';
import { computeReview } from '../main/engine/review.ts';
import { protocolOption } from './classify-commands.ts';
import type { Command } from './commands.ts';
import { augmentPreview } from '../main/engine/augment/augment.ts';
import { augmentOption } from './classify-commands.ts';
import { need, stringOption, withProject } from './options.ts';

const exportCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'export FILE --model ID --out DIR') as [string];
  const id = stringOption(ctx, 'model');
  const out = stringOption(ctx, 'out');
  if (!id || !out) throw new FewShotError('INVALID_INPUT', '--model and --out are required.');
  return withProject(file, async (p) => {
    const model = findModel(p, id);
    const entry = resolveBackbone(model.backboneId);
    const b = await Backbone.load(entry);
    try {
      const r = await exportModel(p, model.id, entry, b, out);
      ctx.log(`Exported ${r.files.join(', ')} to ${r.dir}`);
      ctx.log(
        `Parity: ${r.parity.sameClass}/${r.parity.images} same class, max probability difference ${r.parity.maxProbabilityDifference.toExponential(2)}`,
      );
      return r;
    } finally {
      await b.release();
    }
  });
};

const importModel: Command = async (args, ctx) => {
  const [file, dir] = need(args, 2, 'import-model FILE DIR') as [string, string];
  return withProject(file, async (p) => {
    const modelId = importModelBundle(p, dir, resolveBackbone);
    ctx.log(`Imported model ${modelId}`);
    return { modelId };
  });
};

export const EXPORT_COMMANDS: Record<string, Command> = { export: exportCmd, 'import-model': importModel };

const report: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'report FILE (--model ID | --batch RUN_ID) --out PDF') as [string];
  const out = stringOption(ctx, 'out');
  const modelId = stringOption(ctx, 'model');
  const runId = stringOption(ctx, 'batch');
  if (!out || (!modelId && !runId) || (modelId && runId))
    throw new FewShotError(
      'INVALID_INPUT',
      'usage: fewshot report FILE (--model ID | --batch RUN_ID) --out PDF',
    );
  return withProject(file, async (p) => {
    let pdf: Buffer;
    if (runId) pdf = await renderBatchReport(p, runId);
    else {
      const model = findModel(p, modelId as string);
      const b = await Backbone.load(resolveBackbone(model.backboneId));
      try {
        const protocol = ['shots', 'folds', 'loo', 'holdout'].some((k) => ctx.options[k] !== undefined)
          ? protocolOption(ctx)
          : undefined;
        const review = await computeReview(p, b, model, {
          ...(protocol ? { protocol } : {}),
          groupAware: !ctx.options['no-groups'],
          onProgress: (ph, d, t) => ctx.progress(`${ph}: ${d}/${t}`),
        });
        const warnings = await datasetWarnings(p, await loadDataset(p, b));
        pdf = await renderEvaluationReport({ project: p, ...review, warnings });
      } finally {
        await b.release();
      }
    }
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, pdf);
    fs.renameSync(tmp, out);
    p.db.transaction(() =>
      p.audit.append('report', {
        kind: runId ? 'batch' : 'evaluation',
        id: runId ?? modelId,
        bytes: pdf.length,
      }),
    )();
    ctx.log(`Wrote ${out} (${(pdf.length / 1024).toFixed(0)} KiB)`);
    return { out: path.resolve(out), bytes: pdf.length };
  });
};

EXPORT_COMMANDS.report = report;

const augmentPreviewCmd: Command = async (args, ctx) => {
  const [file, image] = need(args, 2, 'augment-preview FILE IMAGE --n 8 --out DIR') as [string, string];
  const out = stringOption(ctx, 'out');
  if (!out) throw new FewShotError('INVALID_INPUT', '--out is required.');
  return withProject(file, async (p) => {
    const img = /^\d+$/.test(image)
      ? p.images.get(Number(image))
      : (p.images.list({ includeExcluded: true }).find((i) => i.relPath === image) ?? null);
    const bytes = img ? p.images.bytes(img.sha256) : null;
    if (!img || !bytes)
      throw new FewShotError(
        'NOT_FOUND',
        `No image "${image}" in the project (give its id or its path relative to the import folder).`,
      );
    const n = Number(ctx.options.n ?? 8);
    if (!Number.isInteger(n) || n < 1 || n > 64)
      throw new FewShotError('INVALID_INPUT', '--n is between 1 and 64.');
    const spec = augmentOption(ctx);
    const seed = Number(ctx.options.seed ?? 0);
    const pngs = await augmentPreview(bytes, spec, n, seed, { width: 224, height: 224, resizeShorter: 256 });
    fs.mkdirSync(out, { recursive: true });
    const files = pngs.map((png, i) => {
      const f = path.join(out, `variant-${String(i + 1).padStart(2, '0')}.png`);
      fs.writeFileSync(f, png);
      return f;
    });
    ctx.log(`Wrote ${files.length} variants to ${out}`);
    return { files, spec, seed };
  });
};

EXPORT_COMMANDS['augment-preview'] = augmentPreviewCmd;
