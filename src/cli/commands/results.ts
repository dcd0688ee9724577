// `fewshot classify | report | export | import-model | delete-model | augment-preview`.

import { ttaLabel } from '../../shared/tta.ts';
import { FewShotError } from '../../shared/errors.ts';
import { classifyBatch } from '../../main/services/batch.ts';
import { exportBundle, importBundle } from '../../main/services/bundles.ts';
import { deleteModel } from '../../main/services/model-delete.ts';
import { writeAugmentationPreview } from '../../main/services/dataset.ts';
import { withProject } from '../../main/services/projects.ts';
import { report } from '../../main/services/reports.ts';
import type { Command } from '../context.ts';
import {
  augmentOption,
  defined,
  hasProtocolOption,
  intOption,
  need,
  numberOption,
  deviceOption,
  optionalInt,
  protocolOption,
  request,
  requiredOption,
  REQUESTS,
  stringOption,
  ttaOption,
} from '../options.ts';

const classify: Command = async (args, ctx) => {
  const [file, folder] = need(args, 2, 'classify FILE --model ID FOLDER --out CSV') as [string, string];
  const req = request(
    REQUESTS.batch,
    defined({
      modelId: requiredOption(ctx, 'model', 'see fewshot trained'),
      folder,
      out: requiredOption(ctx, 'out'),
      sortInto: stringOption(ctx, 'sort-into'),
      link: ctx.options.link === true,
      minConfidence: numberOption(ctx, 'min-confidence', 0.5),
      batchSize: optionalInt(ctx, 'batch-size'),
      device: deviceOption(ctx),
      tta: ttaOption(ctx),
    }),
  );
  return withProject(file, async (p) => {
    const r = await classifyBatch(p, req, ctx.run);
    ctx.log(
      `${r.files} files: ${r.ok} classified, ${r.uncertain} uncertain, ${r.errors} errors${r.resumed ? ` (resumed; ${r.alreadyDone} were done)` : ''}; ${r.imagesPerSecond.toFixed(1)} images/s`,
    );
    for (const [c, n] of Object.entries(r.perClass)) ctx.log(`  ${c}: ${n}`);
    if (req.tta && req.tta !== 'none') ctx.log(`Views: ${ttaLabel(req.tta)}`);
    ctx.log(`CSV: ${r.csv}`);
    return r;
  });
};

const reportCmd: Command = async (args, ctx) => {
  const usage = 'report FILE (--model ID | --batch RUN_ID) --out PDF';
  const [file] = need(args, 1, usage) as [string];
  const modelId = stringOption(ctx, 'model');
  const runId = stringOption(ctx, 'batch');
  if ((!modelId && !runId) || (modelId && runId))
    throw new FewShotError('INVALID_INPUT', `usage: fewshot ${usage}`);
  const out = requiredOption(ctx, 'out');
  const req = request(
    REQUESTS.report,
    runId
      ? { kind: 'batch', runId, out }
      : defined({
          kind: 'evaluation',
          modelId,
          out,
          protocol: hasProtocolOption(ctx) ? protocolOption(ctx) : undefined,
          groupAware: ctx.options['no-groups'] ? false : undefined,
        }),
  );
  return withProject(file, async (p) => {
    const r = await report(p, req, ctx.run);
    ctx.log(`Wrote ${out} (${(r.bytes / 1024).toFixed(0)} KiB)`);
    return r;
  });
};

const exportCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'export FILE --model ID --out DIR') as [string];
  const req = request(REQUESTS.export, {
    modelId: requiredOption(ctx, 'model'),
    out: requiredOption(ctx, 'out'),
  });
  return withProject(file, async (p) => {
    const r = await exportBundle(p, req, ctx.run);
    ctx.log(`Exported ${r.files.join(', ')} to ${r.dir}`);
    ctx.log(
      `Parity: ${r.parity.sameClass}/${r.parity.images} same class, max probability difference ${r.parity.maxProbabilityDifference.toExponential(2)}`,
    );
    return r;
  });
};

const importModel: Command = async (args, ctx) => {
  const [file, dir] = need(args, 2, 'import-model FILE DIR') as [string, string];
  return withProject(file, async (p) => {
    const r = importBundle(p, dir);
    ctx.log(`Imported model ${r.modelId}`);
    return r;
  });
};

const deleteModelCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'delete-model FILE --model ID') as [string];
  const modelId = requiredOption(ctx, 'model', 'see fewshot trained');
  // This command holds the project's write lock, so no job of the app can be using the model.
  return withProject(file, async (p) => {
    const r = deleteModel(p, modelId, () => false);
    ctx.log(
      `Deleted model ${r.modelId} (${r.name}) with ${r.batchRuns} batch runs and ${r.evaluations} stored evaluations; exported files were left where they are.`,
    );
    return r;
  });
};

const augmentPreviewCmd: Command = async (args, ctx) => {
  const [file, image] = need(args, 2, 'augment-preview FILE IMAGE --n 8 --out DIR') as [string, string];
  const out = requiredOption(ctx, 'out');
  const n = intOption(ctx, 'n', 8);
  if (n > 64) throw new FewShotError('INVALID_INPUT', '--n is between 1 and 64.');
  const spec = augmentOption(ctx);
  const seed = intOption(ctx, 'seed', 0, true);
  return withProject(file, async (p) => {
    const { files } = await writeAugmentationPreview(p, image, spec, n, seed, out);
    ctx.log(`Wrote ${files.length} variants to ${out}`);
    return { files, spec, seed };
  });
};

export const RESULT_COMMANDS: Record<string, Command> = {
  classify,
  report: reportCmd,
  export: exportCmd,
  'import-model': importModel,
  'delete-model': deleteModelCmd,
  'augment-preview': augmentPreviewCmd,
};
